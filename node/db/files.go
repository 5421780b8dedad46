package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Attachments. A file is written through Raft in chunks (FileChunk), staged under an upload id,
// and becomes a file, keyed by its SHA-256, only when a FileStep commits the upload after
// checking the chunks against the hash and size. An upload that breaks off leaves staged
// chunks, which an abort removes at once or, when the writer died, a sweep removes once they
// are stale: nothing of it is ever a file.
//
// file_refs says which record names which file. It follows each record as it is applied, own
// or cached from a peer, so that what a record names is always known without reading bodies.
//
// file_sources says where a file's content came from: '' for an upload to this node, and each
// peer it was fetched from. A file is a peer's only while a record of that peer names it: a
// peer's record that names a hash stored from elsewhere does not count it as stored until the
// file is fetched from that peer as well (under that peer's grant and audit), and a file is read
// through a record only when the record's origin, or this node, is one of its sources. So a
// retraction by one peer takes that peer's source away even when another peer's record names
// the same hash, and the file goes as soon as it has no source left. An uploaded file that no
// record names goes at the next sweep after it is stale (an upload of content already stored
// makes it new again), so that an upload is not lost before its record is put.
//
// file_text holds the text extracted from a file for the full-text index, kept beside the
// replicated state like the index: each replica extracts it (see ExtractPending).

var (
	// ErrFileNotFound means no file with the hash is stored.
	ErrFileNotFound = errors.New("db: file not found")
	// ErrFileRefused means a file step could not be applied as asked: a chunk of an unknown
	// upload or out of order, or a commit whose chunks do not match its hash or size.
	ErrFileRefused = errors.New("db: file step refused")
)

// File is a stored file.
type File struct {
	SHA256    string
	Size      int64
	MediaType string
	// Origin is "" for a file uploaded here (whatever peers sent it too), else a peer it was
	// fetched from.
	Origin   string
	StoredAt time.Time
	uploadID string
}

// ApplyFileChunk stages one chunk. It returns a refusal wrapping ErrFileRefused, with nothing
// stored, for a chunk of an unknown upload or one out of order.
func (d *DB) ApplyFileChunk(index uint64, c *pb.FileChunk) (refused error, err error) {
	err = d.applyTx(index, func(tx *writeTx, _ *int64) error {
		var chunks int64
		var state []byte
		switch err := tx.QueryRow(`SELECT chunks, hash_state FROM file_uploads WHERE upload_id = ?`, c.UploadId).Scan(&chunks, &state); {
		case errors.Is(err, sql.ErrNoRows):
			if c.Seq != 0 {
				refused = fmt.Errorf("%w: upload %s is not staged (it was aborted or swept): upload the file again", ErrFileRefused, c.UploadId)
				return nil
			}
			if _, err := tx.Exec(`INSERT INTO file_uploads (upload_id, chunks, size, hash_state, touched_at) VALUES (?, 0, 0, x'', ?)`, c.UploadId, tsNanos(c.At)); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if c.Seq != chunks {
			refused = fmt.Errorf("%w: chunk %d of upload %s comes after %d chunks: chunks go in order", ErrFileRefused, c.Seq, c.UploadId, chunks)
			return nil
		}
		if _, err := tx.Exec(`INSERT INTO file_chunks (upload_id, seq, data) VALUES (?, ?, ?)`, c.UploadId, c.Seq, c.Data); err != nil {
			return err
		}
		// The hash goes along with the chunks, so that a commit need not read them back.
		h, err := resumeHash(state)
		if err != nil {
			return err
		}
		h.Write(c.Data)
		if state, err = h.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE file_uploads SET chunks = chunks + 1, size = size + ?, hash_state = ?, touched_at = ? WHERE upload_id = ?`, len(c.Data), state, tsNanos(c.At), c.UploadId)
		return err
	})
	return refused, err
}

// ApplyFileStep commits, aborts or sweeps (see pb.FileStep). A commit whose chunks do not match
// its hash or size is refused, and its chunks removed. removed reports whether an abort or a
// sweep removed content, which must then leave the data directory (see store's eraser).
func (d *DB) ApplyFileStep(index uint64, s *pb.FileStep) (refused error, removed bool, err error) {
	err = d.applyTx(index, func(tx *writeTx, _ *int64) error {
		switch s.Action {
		case "commit":
			var err error
			refused, removed, err = commitUpload(tx, s)
			return err
		case "abort":
			removed = true
			return dropUpload(tx, s.UploadId)
		case "sweep":
			var err error
			removed, err = sweepFiles(tx, tsNanos(s.StaleBefore))
			return err
		}
		refused = fmt.Errorf("%w: unknown file step %q", ErrFileRefused, s.Action)
		return nil
	})
	return refused, removed, err
}

// The statements that find what a sweep removes.
const (
	sqlStaleUploads = `SELECT upload_id FROM file_uploads WHERE touched_at < ?`
	sqlUnnamedFiles = `SELECT sha256 FROM files WHERE stored_at < ? AND NOT EXISTS (SELECT 1 FROM file_refs WHERE file_refs.sha256 = files.sha256)`
)

// Sweepable reports whether a sweep with stale_before would remove anything, so that the leader
// proposes one only then.
func (d *DB) Sweepable(ctx context.Context, before time.Time) (bool, error) {
	var due bool
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT EXISTS (`+sqlStaleUploads+`) OR EXISTS (`+sqlUnnamedFiles+`)`, before.UnixNano(), before.UnixNano()).Scan(&due)
	})
	return due, err
}

// commitUpload makes an upload a file, or adds its source to the file that holds the same
// content. removed reports that it dropped staged content that must leave the data directory.
func commitUpload(tx *writeTx, s *pb.FileStep) (refused error, removed bool, err error) {
	var size int64
	var state []byte
	err = tx.QueryRow(`SELECT size, hash_state FROM file_uploads WHERE upload_id = ?`, s.UploadId).Scan(&size, &state)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: upload %s is not staged (it was aborted or swept): upload the file again", ErrFileRefused, s.UploadId), false, nil
		}
		return nil, false, err
	}
	refuse := func(format string, args ...any) (error, bool, error) {
		if err := dropUpload(tx, s.UploadId); err != nil {
			return nil, false, err
		}
		return fmt.Errorf("%w: "+format, append([]any{ErrFileRefused}, args...)...), false, nil
	}
	if size != s.Size {
		return refuse("upload %s holds %d bytes, not %d", s.UploadId, size, s.Size)
	}
	h, err := resumeHash(state)
	if err != nil {
		return nil, false, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.Sha256 {
		return refuse("upload %s has SHA-256 %s, not %s", s.UploadId, got, s.Sha256)
	}
	if s.Origin != "" {
		// A fetch that ends after the peer retracted the record is not kept: nothing of the
		// peer's stays that no record of the peer names.
		var named bool
		if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM file_refs WHERE origin = ? AND sha256 = ?)`, s.Origin, s.Sha256).Scan(&named); err != nil {
			return nil, false, err
		}
		if !named {
			refused, _, err = refuse("no record of %s names file %s any more: it is not kept", s.Origin, s.Sha256)
			return refused, err == nil, err
		}
	}
	if _, err := tx.Exec(`INSERT OR IGNORE INTO file_sources (sha256, origin) VALUES (?, ?)`, s.Sha256, s.Origin); err != nil {
		return nil, false, err
	}
	var exists bool
	if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM files WHERE sha256 = ?)`, s.Sha256).Scan(&exists); err != nil {
		return nil, false, err
	}
	if exists {
		// The same content is stored already: this upload's chunks are not needed, but it is
		// the uploader's file now too (an own upload of content a peer sent is this org's own),
		// and an own upload is kept from the sweep as a new one is.
		if s.Origin == "" {
			if _, err := tx.Exec(`UPDATE files SET stored_at = max(stored_at, ?) WHERE sha256 = ?`, tsNanos(s.At), s.Sha256); err != nil {
				return nil, false, err
			}
		}
		if !textIndexOff {
			// The source's records may read the file's text now (see sqlTextFiles).
			if _, err := tx.Exec(`INSERT INTO text_queue (origin, id) SELECT origin, id FROM file_refs WHERE sha256 = ? AND origin = ?`, s.Sha256, s.Origin); err != nil {
				return nil, false, err
			}
			tx.text = true
		}
		return nil, false, dropUpload(tx, s.UploadId)
	}
	if _, err := tx.Exec(`INSERT INTO files (sha256, upload_id, size, media_type, stored_at) VALUES (?,?,?,?,?)`,
		s.Sha256, s.UploadId, s.Size, s.MediaType, tsNanos(s.At)); err != nil {
		return nil, false, err
	}
	tx.text = true // its text is to be extracted
	_, err = tx.Exec(`DELETE FROM file_uploads WHERE upload_id = ?`, s.UploadId)
	return nil, false, err
}

// resumeHash is a SHA-256 in the state an upload's chunks left it (none: a new one).
func resumeHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("file upload hash state: %w", err)
	}
	return h, nil
}

// eachChunk calls fn with each chunk of an upload, in order, one query per chunk so that no
// statement stays open while fn runs.
func eachChunk(query func(string, ...any) (*sql.Rows, error), uploadID string, fn func([]byte) error) error {
	for seq := int64(0); ; seq++ {
		rows, err := query(`SELECT data FROM file_chunks WHERE upload_id = ? AND seq = ?`, uploadID, seq)
		if err != nil {
			return err
		}
		var data []byte
		found := rows.Next()
		if found {
			err = rows.Scan(&data)
		}
		rows.Close()
		if err != nil {
			return err
		}
		if !found {
			return nil
		}
		if err := fn(data); err != nil {
			return err
		}
	}
}

func dropUpload(tx *writeTx, uploadID string) error {
	if _, err := tx.Exec(`DELETE FROM file_chunks WHERE upload_id = ?`, uploadID); err != nil {
		return err
	}
	_, err := tx.Exec(`DELETE FROM file_uploads WHERE upload_id = ?`, uploadID)
	return err
}

// dropFile removes a file, its chunks, its sources and its text.
func dropFile(tx *writeTx, sha string) error {
	var upload string
	switch err := tx.QueryRow(`SELECT upload_id FROM files WHERE sha256 = ?`, sha).Scan(&upload); {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	if _, err := tx.Exec(`DELETE FROM file_chunks WHERE upload_id = ?`, upload); err != nil {
		return err
	}
	if _, err := tx.Exec(`DELETE FROM files WHERE sha256 = ?`, sha); err != nil {
		return err
	}
	if _, err := tx.Exec(`DELETE FROM file_sources WHERE sha256 = ?`, sha); err != nil {
		return err
	}
	_, err := tx.Exec(`DELETE FROM file_text WHERE sha256 = ?`, sha)
	return err
}

// sweepFiles removes the uploads no chunk reached since before, and the files stored before it
// that no record names.
func sweepFiles(tx *writeTx, before int64) (removed bool, err error) {
	stale, err := queryStrings(tx, sqlStaleUploads, before)
	if err != nil {
		return false, err
	}
	for _, id := range stale {
		if err := dropUpload(tx, id); err != nil {
			return false, err
		}
	}
	unnamed, err := queryStrings(tx, sqlUnnamedFiles, before)
	if err != nil {
		return false, err
	}
	for _, sha := range unnamed {
		if err := dropFile(tx, sha); err != nil {
			return false, err
		}
	}
	return len(stale)+len(unnamed) > 0, nil
}

// sqlRefsDrop takes a record's file refs out as it is applied (see noReprepare for the +?).
const sqlRefsDrop = `DELETE FROM file_refs WHERE origin = +? AND id = +? RETURNING sha256`

// setRefs records the files a record names as it is applied (nothing for a tombstone or a
// retraction: body nil). When no record of a peer names a file any more, the peer is no source
// of it any more, and a file with no source left goes at once. It returns how many files the
// body names.
func setRefs(tx *writeTx, origin, id string, body []byte) (int, error) {
	old, err := queryStrings(tx, sqlRefsDrop, origin, id)
	if err != nil {
		return 0, fmt.Errorf("file refs: %w", err)
	}
	// A body that does not parse names nothing: own bodies were checked before they entered
	// the log, and a peer's record is never trusted beyond what parses.
	atts, _ := record.Attachments(body)
	named := map[string]bool{}
	for _, a := range atts {
		named[a.SHA256] = true
		if _, err := tx.Exec(`INSERT OR IGNORE INTO file_refs (origin, id, sha256, size, media_type) VALUES (?,?,?,?,?)`, origin, id, a.SHA256, a.Size, a.MediaType); err != nil {
			return 0, fmt.Errorf("file refs: %w", err)
		}
	}
	if origin == "" {
		return len(atts), nil
	}
	for _, sha := range old {
		if named[sha] {
			continue
		}
		var namedByOrigin bool
		if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM file_refs WHERE origin = ? AND sha256 = ?)`, origin, sha).Scan(&namedByOrigin); err != nil {
			return 0, err
		}
		if namedByOrigin {
			continue
		}
		if _, err := tx.Exec(`DELETE FROM file_sources WHERE sha256 = ? AND origin = ?`, sha, origin); err != nil {
			return 0, err
		}
		var sourced bool
		if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM file_sources WHERE sha256 = ?)`, sha).Scan(&sourced); err != nil {
			return 0, err
		}
		if !sourced {
			if err := dropFile(tx, sha); err != nil {
				return 0, err
			}
		}
	}
	return len(atts), nil
}

// FileInfo returns the stored file with the hash, or ErrFileNotFound.
func (d *DB) FileInfo(ctx context.Context, sha string) (*File, error) {
	var f File
	var at int64
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT sha256, upload_id, size, media_type,
			coalesce((SELECT min(origin) FROM file_sources s WHERE s.sha256 = files.sha256), ''), stored_at FROM files WHERE sha256 = ?`, sha).
			Scan(&f.SHA256, &f.uploadID, &f.Size, &f.MediaType, &f.Origin, &at)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrFileNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: file %s: %w", sha, err)
	}
	f.StoredAt = time.Unix(0, at)
	return &f, nil
}

// ReadFile calls fn with each chunk of a stored file, in order. A file removed while it is
// being read ends with ErrFileNotFound.
func (d *DB) ReadFile(ctx context.Context, sha string, fn func([]byte) error) error {
	f, err := d.FileInfo(ctx, sha)
	if err != nil {
		return err
	}
	var n int64
	err = eachChunk(func(q string, args ...any) (*sql.Rows, error) {
		var rows *sql.Rows
		err := d.read(func(ro *sql.DB) error {
			var err error
			rows, err = ro.QueryContext(ctx, q, args...)
			return err
		})
		return rows, err
	}, f.uploadID, func(b []byte) error {
		n += int64(len(b))
		return fn(b)
	})
	if err != nil {
		return fmt.Errorf("db: read file %s: %w", sha, err)
	}
	if n != f.Size {
		return fmt.Errorf("db: read file %s: %w (removed while it was read)", sha, ErrFileNotFound)
	}
	return nil
}

// sqlStoredForRef holds, for the file_refs row r, when its file is stored for r's record: fetched
// from the record's origin, or uploaded here. A copy another peer sent is not, and stays
// unreadable through r.
const sqlStoredForRef = `EXISTS (SELECT 1 FROM file_sources s WHERE s.sha256 = r.sha256 AND s.origin IN ('', r.origin))`

// Named is how the live record id of origin ("" for an own record) in mode m names the file:
// as what (the attachment of the record's body), and whether the file is stored for it, fetched
// from the record's origin or uploaded here (see file_sources). ok is false when no such record
// names the file: a record of another mode names nothing.
func (d *DB) Named(ctx context.Context, origin, id, sha string, m Mode) (a record.Attachment, stored, ok bool, err error) {
	q := `SELECT c.body, ` + sqlStoredForRef + `
		FROM file_refs r JOIN records c ON c.id = r.id
		WHERE r.origin = '' AND r.id = ? AND r.sha256 = ? AND c.tombstone = 0 AND c.status = ? AND c.exercise = ?`
	args := []any{id, sha, int32(m.Status), m.Exercise}
	if origin != "" {
		q = `SELECT c.body, ` + sqlStoredForRef + `
		FROM file_refs r JOIN foreign_records c ON c.origin = r.origin AND c.id = r.id
		WHERE r.origin = ? AND r.id = ? AND r.sha256 = ? AND c.status = ? AND c.exercise = ?`
		args = append([]any{origin}, args...)
	}
	var body []byte
	err = d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, q, args...).Scan(&body, &stored)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, false, nil
	}
	if err != nil {
		return a, false, false, fmt.Errorf("db: files of %s/%s: %w", origin, id, err)
	}
	return attachmentOf(body, sha), stored, true, nil
}

// attachmentOf is the attachment in body that names sha, or one that says only its hash.
func attachmentOf(body []byte, sha string) record.Attachment {
	atts, _ := record.Attachments(body)
	for _, a := range atts {
		if a.SHA256 == sha {
			return a
		}
	}
	return record.Attachment{SHA256: sha}
}

// FileRef is a file a record names.
type FileRef struct {
	RecordID  string
	SHA256    string
	Size      int64
	MediaType string
	// Filename is the name the record gives the file.
	Filename string
}

// MissingFiles returns up to limit files that records cached from origin name and that are
// not stored for them, neither fetched from the peer nor uploaded here (a copy another peer sent
// does not count): those the node has still to fetch from the peer. They come in the order of
// their sha256, after after ("" from the first), so that a caller pages through them all.
func (d *DB) MissingFiles(ctx context.Context, origin, after string, limit int) ([]FileRef, error) {
	var out []FileRef
	err := d.eachRow(ctx, `SELECT r.id, r.sha256, r.size, r.media_type, c.body FROM file_refs r JOIN foreign_records c ON c.origin = r.origin AND c.id = r.id
		WHERE r.origin = ? AND r.sha256 > ?
		AND NOT `+sqlStoredForRef+` GROUP BY r.sha256 ORDER BY r.sha256 LIMIT ?`, []any{origin, after, limit}, func(rows *sql.Rows) error {
		var r FileRef
		var body []byte
		if err := rows.Scan(&r.RecordID, &r.SHA256, &r.Size, &r.MediaType, &body); err != nil {
			return err
		}
		r.Filename = attachmentOf(body, r.SHA256).Filename
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: missing files of %s: %w", origin, err)
	}
	return out, nil
}

// FileCounts is how many files the node holds and their bytes, and how many uploads and chunks
// are staged: chunks that are no file's.
func (d *DB) FileCounts(ctx context.Context) (files, fileBytes, uploads, chunks int64, err error) {
	err = d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM files), (SELECT coalesce(sum(size), 0) FROM files),
			(SELECT count(*) FROM file_uploads), (SELECT count(*) FROM file_chunks c WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.upload_id = c.upload_id))`).Scan(&files, &fileBytes, &uploads, &chunks)
	})
	return
}

// ErrNoText is what an Extractor returns for a file whose type holds no text it reads.
var ErrNoText = errors.New("db: no text in this media type")

// Extractor takes the text out of a file's content for the full-text index. It returns
// ErrNoText for a media type it does not read, and another error for a file it cannot read
// (such a file is stored, not indexed). It runs outside every lock, and must bound its own time
// and output.
type Extractor func(mediaType string, data []byte) (string, error)

// SetExtractor sets how the indexer takes text out of files no larger than maxBytes. Without
// one, files add nothing to the index.
func (d *DB) SetExtractor(e Extractor, maxBytes int64) {
	d.extractMu.Lock()
	defer d.extractMu.Unlock()
	d.extractor, d.extractMax = e, maxBytes
	d.textWork.Add(1) // stored files may now have text to extract
}

// extractBatch is how many files one ExtractPending pass reads.
const extractBatch = 8

// ExtractPending takes the text out of stored files that have none yet, a few at a time, and
// queues the records that name each for the index. A file that cannot be read is marked broken
// (and logged through logErr): it stays stored and is not indexed.
func (d *DB) ExtractPending(ctx context.Context, logErr func(error)) int {
	d.extractMu.Lock()
	extract, maxBytes := d.extractor, d.extractMax
	d.extractMu.Unlock()
	if extract == nil {
		return 0
	}
	var todo []File
	err := d.eachRow(ctx, `SELECT sha256, size, media_type FROM files f WHERE NOT EXISTS (SELECT 1 FROM file_text t WHERE t.sha256 = f.sha256) LIMIT ?`,
		[]any{extractBatch}, func(rows *sql.Rows) error {
			var f File
			if err := rows.Scan(&f.SHA256, &f.Size, &f.MediaType); err != nil {
				return err
			}
			todo = append(todo, f)
			return nil
		})
	if err != nil {
		logErr(fmt.Errorf("db: files to extract: %w", err))
		return 0
	}
	for _, f := range todo {
		state, text := "indexed", ""
		if f.Size > maxBytes {
			state = "skipped"
		} else {
			data := make([]byte, 0, f.Size)
			if err := d.ReadFile(ctx, f.SHA256, func(b []byte) error { data = append(data, b...); return nil }); err != nil {
				continue // removed meanwhile, or the node is closing
			}
			var err error
			text, err = extract(f.MediaType, data)
			switch {
			case errors.Is(err, ErrNoText):
				state = "skipped"
			case err != nil:
				state, text = "broken", ""
				logErr(fmt.Errorf("db: file %s (%s) is stored but not indexed: %w", f.SHA256, f.MediaType, err))
			}
		}
		if err := d.storeFileText(f.SHA256, state, text); err != nil {
			logErr(err)
		}
	}
	return len(todo)
}

// storeFileText keeps a file's text, if the file is still stored, and queues the records that
// name it for the index.
func (d *DB) storeFileText(sha, state, text string) error {
	err := d.localTx(func(tx *writeTx) (bool, error) {
		if _, err := tx.Exec(`INSERT OR REPLACE INTO file_text (sha256, state, text) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM files WHERE sha256 = ?)`, sha, state, text, sha); err != nil {
			return false, err
		}
		if text != "" && !textIndexOff {
			if _, err := tx.Exec(`INSERT INTO text_queue (origin, id) SELECT origin, id FROM file_refs WHERE sha256 = ?`, sha); err != nil {
				return false, err
			}
			tx.text = true
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("db: file text: %w", err)
	}
	return nil
}

// FileText returns the text taken out of each file that is stored and has some, by hash.
func (d *DB) FileText(ctx context.Context, shas []string) (map[string]string, error) {
	out := map[string]string{}
	for _, sha := range shas {
		var text string
		err := d.read(func(ro *sql.DB) error {
			return ro.QueryRowContext(ctx, `SELECT text FROM file_text WHERE sha256 = ? AND text != ''`, sha).Scan(&text)
		})
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("db: file text: %w", err)
		default:
			out[sha] = text
		}
	}
	return out, nil
}

// FileTextState is how the indexer left a file: indexed, broken, skipped, or "" when it has not
// read it yet.
func (d *DB) FileTextState(ctx context.Context, sha string) (string, error) {
	var state string
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT state FROM file_text WHERE sha256 = ?`, sha).Scan(&state)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return state, err
}
