package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newBackupCmd() *cobra.Command {
	var (
		f         clientFlags
		quiet     bool
		overwrite bool
	)
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Save a consistent copy of a running node's database",
		Long: `Save a consistent copy of the database of the replica --node names, as committed when the
backup began; writes go on meanwhile. FILE is written beside itself and renamed once whole, with
mode 0600: it holds every record the node holds, confidential ones and peers' copies included, so
keep it as you keep the node's data directory. knooppunt restore makes a node of it. An existing
FILE is kept unless --overwrite: it may be the last good backup. Beside it, FILE.sha256 gives its
SHA-256 as sha256sum writes it (sha256sum -c FILE.sha256 checks it), which restore checks, and
which the node's audit log holds too (knooppunt audit list --action backup). Once both are kept,
the replica is told so, and only then does it count the backup as taken (knooppunt status, and
the metric knooppunt_backup_last_success_timestamp_seconds). Prints the file, its size, the last
log entry it holds and its SHA-256. A backup of a node of a newer release than this knooppunt is
kept whole with a warning (this knooppunt cannot check what it holds): upgrade the knooppunt that
takes backups with the nodes. For admins and the local socket.`,
		Example: `  knooppunt backup /var/backups/knooppunt/$(date +%F).db
  knooppunt backup --node unix:///var/lib/knooppunt/knooppunt.sock nightly.db -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			out := args[0]
			if info, err := os.Stat(out); err == nil && info.IsDir() {
				return fmt.Errorf("FILE: %s is a directory: name the file to write", out)
			} else if err == nil && !overwrite {
				return &codedError{codes.AlreadyExists, fmt.Errorf("FILE: %s exists (%d bytes, %s): name a new file, or give --overwrite to replace it once the new backup is whole",
					out, info.Size(), stamp(info.ModTime()))}
			}
			var saved savedBackup
			err := f.call(func(conn *grpc.ClientConn) error {
				var err error
				saved, err = saveBackup(cmd, conn, out, !quiet && f.output != "json")
				return err
			})
			if err != nil {
				return err
			}
			if saved.behind != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: warning: the replica was not current with its group when the copy began: %s. %s holds what this replica applied, up to log entry %d, which may be older than the group's: for the group's latest, take the backup from its leader (knooppunt cluster status)\n",
					saved.behind, out, saved.applied)
			}
			if saved.newer != 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: warning: %s\n", saved.newerNote(out))
			}
			if f.output == "json" {
				doc := map[string]any{"file": out, "bytes": saved.size, "applied_index": saved.applied, "sha256": saved.sha256}
				if saved.behind != "" {
					doc["behind"] = saved.behind // why the replica was not current; left out when it was
				}
				if saved.newer != 0 {
					doc["unchecked"] = saved.newerNote(out) // left out when this knooppunt checked it whole
				}
				return printJSON(cmd.OutOrStdout(), doc)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %d bytes, up to log entry %d, SHA-256 %s (in %s)\n", out, saved.size, saved.applied, saved.sha256, out+sumSuffix)
			return err
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace FILE if it exists, once the new backup is whole and checked")
	f.register(cmd, true)
	return cmd
}

// saveBackup streams the node's backup into a file beside out, checks it whole, and renames it
// to out, so that a broken transfer never leaves a partial backup under the name asked for; its
// SHA-256, hashed as it streams, goes to out.sha256 the same way, for restore to check. Then it
// tells the replica that it kept the backup (BackupKept), for the replica's monitoring of its
// backups: a backup sent and not kept is not one.
func saveBackup(cmd *cobra.Command, conn *grpc.ClientConn, out string, show bool) (savedBackup, error) {
	var (
		applied uint64
		size    int64
		behind  string
	)
	tmp, err := createBeside(out)
	if err != nil {
		return savedBackup{}, fmt.Errorf("FILE: %w", err)
	}
	defer tmp.discard()
	cc := pb.NewClusterServiceClient(conn)
	stream, err := cc.Backup(cmd.Context(), &pb.BackupRequest{})
	if err != nil {
		return savedBackup{}, err
	}
	var bar *progressbar.ProgressBar
	var got int64
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return savedBackup{}, err
		}
		if bar == nil {
			applied, size, behind = c.AppliedIndex, c.Size, c.Behind
			bar = newBar(cmd.ErrOrStderr(), size, "backing up", show)
		}
		if _, err := w.Write(c.Data); err != nil {
			return savedBackup{}, fmt.Errorf("FILE: %w", err)
		}
		bar.Add(len(c.Data))
		got += int64(len(c.Data))
	}
	if bar != nil {
		bar.Finish()
	}
	if bar == nil || got != size {
		return savedBackup{}, fmt.Errorf("the node sent %d of %d bytes: the backup is incomplete; nothing was written to %s", got, size, out)
	}
	holds, _, err := db.CheckBackup(cmd.Context(), tmp.Name())
	var newer *db.NewerSchemaError
	switch {
	case errors.As(err, &newer):
		// Whole, every page checked, but of a newer release than this knooppunt, which cannot
		// read what it holds: kept all the same. A knooppunt that takes backups and is not
		// upgraded with the nodes would otherwise keep none from then on (review AH, AH1).
	case err != nil || holds != applied:
		return savedBackup{}, fmt.Errorf("the backup does not check (%v, log entry %d, want %d); nothing was written to %s", err, holds, applied, out)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// Written whole before the backup is renamed, and renamed right after it: a failure before
	// leaves neither, one between (rare: both are in the same directory) FILE without it. A
	// FILE.sha256 of the backup that --overwrite replaces goes first, so that no failure leaves
	// it beside the new FILE, which restore would refuse as damaged (review AC, AC6).
	side, err := writeSum(out, sum)
	if err != nil {
		return savedBackup{}, fmt.Errorf("FILE: %w; nothing was written to %s", err, out)
	}
	defer side.discard()
	if err := os.Remove(out + sumSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return savedBackup{}, fmt.Errorf("FILE: %w; nothing was written to %s", err, out)
	}
	if err := tmp.commit(); err != nil {
		return savedBackup{}, fmt.Errorf("FILE: %w", err)
	}
	if err := side.commit(); err != nil {
		return savedBackup{}, fmt.Errorf("%s is whole and checked, but its SHA-256 (%s) could not be written beside it: %w; the replica was not told that it is kept", out, sum, err)
	}
	_, err = cc.BackupKept(cmd.Context(), &pb.BackupKeptRequest{Sha256: sum, AppliedIndex: applied})
	switch status.Code(err) {
	case codes.OK:
	case codes.Unimplemented, codes.PermissionDenied:
		// A node of an earlier release has no BackupKept: its table of who may call what lacks
		// it (PermissionDenied), or its service does (Unimplemented). It counted the backup when
		// it sent it. A caller that may take a backup may tell that it is kept, on any release
		// that knows BackupKept.
		fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: note: %s is complete, whole and checked; nothing needs doing. The node's release predates telling it that a backup is kept: it counted the backup when it sent it.\n", out)
	default:
		fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: %s is whole and checked, but the replica was not told that it is kept, so its status and metric do not count it: %v\n", out, err)
	}
	saved := savedBackup{applied: applied, size: size, behind: behind, sha256: sum}
	if newer != nil {
		saved.newer = newer.Schema
	}
	return saved, nil
}

// savedBackup is a backup kept: the last log entry it holds, its size, why the replica was not
// current with its group when the copy began ("" when it was), and its SHA-256 (hex).
type savedBackup struct {
	applied uint64
	size    int64
	behind  string
	sha256  string
	// newer is the schema version of a backup of a newer release than this knooppunt: whole,
	// but what it holds is not checked; 0 otherwise.
	newer int
}

// newerNote is the warning of a backup of a newer release than this knooppunt (savedBackup.newer).
func (s savedBackup) newerNote(out string) string {
	return fmt.Sprintf("the node runs a newer release than this knooppunt (its database schema %d, this knooppunt's %d): %s is whole, but this knooppunt cannot check what it holds. Upgrade the knooppunt that takes backups to the node's release; restore this backup with that release",
		s.newer, db.SchemaVersion, out)
}

func newRestoreCmd() *cobra.Command {
	var (
		dataDir string
		quiet   bool
	)
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Make a node's data directory of a backup",
		Long: `Check a backup (knooppunt backup) and put it in a new data directory; then start the node on
it with knooppunt serve and its usual config. Stop the node first: restore refuses a DIR a node
serves on. DIR must not hold a node's data: restore never overwrites one. FILE is only read: it
is copied into DIR, and the copy checked. FILE.sha256, which backup writes beside FILE, is
checked as FILE is copied: a FILE whose SHA-256 differs was changed or damaged since it was
made, and is refused before anything is restored. Without FILE.sha256, restore says it could not
check FILE; compare the SHA-256 it prints with the one that knooppunt audit list --action backup
shows on the node that made the backup. Run restore as the user the node runs as (sudo -u
knooppunt ...): the database it writes is that user's alone; it warns when DIR is another's.
The node takes the backup as the start of its Raft log, so that its log goes on after the
backup's last entry.

A node of one replica: restore, then serve. A Raft group: restore the backup into one replica's
new data directory, then restore that directory's knooppunt.db into every other replica's before
any starts, and start them all; or start the others with empty data directories and
raft.bootstrap: false, so that they take it from the leader. (Each restore of the backup itself
numbers the feed anew: replicas restored from it one by one would number theirs apart.)

The node holds what it held when the backup was made: records written since are gone from it.
Its change feed goes on past every seq given since the backup, so that a cursor from before the
restore is refused, not resumed, and its webhook ids differ from those sent for the changes that
are gone. Each peer that received changes made after the backup takes all the node grants it
again and drops what did not come; see docs/operator.md, Backups.`,
		Example: `  sudo -u knooppunt knooppunt restore /var/backups/knooppunt/2026-12-03.db --data-dir /var/lib/knooppunt
  sudo -u knooppunt knooppunt serve --data-dir /var/lib/knooppunt --config /etc/knooppunt/node.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return errors.New("--data-dir: name the new data directory")
			}
			got, err := restoreBackup(cmd.Context(), args[0], dataDir, cmd.ErrOrStderr(), !quiet)
			if err != nil {
				return err
			}
			origin := got.origin
			if origin == "" {
				origin = "no org: it holds no records, and names no org"
			}
			start := fmt.Sprintf("with its usual config: knooppunt serve --data-dir %s --config FILE", dataDir)
			if isFile(filepath.Join(dataDir, configName)) {
				start = fmt.Sprintf("with the config in it: knooppunt serve --data-dir %s", dataDir)
			}
			checked := "matches " + args[0] + sumSuffix
			if !got.checked {
				checked = "not checked: no " + args[0] + sumSuffix
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: restored up to log entry %d, the database of %s; start the node on it %s\n%s: SHA-256 %s (%s)\n",
				dataDir, got.applied, origin, start, args[0], got.sha256, checked)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the data directory: absent, or without a node's data (its config and keys may stay)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress")
	return cmd
}

// nodeData are the names of a node's data in its data directory: what a restore must not
// overwrite, and what it must not leave beside the restored database (an old Raft log would
// replay onto it).
var nodeData = []string{node.DatabaseName, node.DatabaseName + "-wal", node.DatabaseName + "-shm", "raft"}

// restored is what a restore restored: the last log entry the database holds, the org whose
// records it holds, the SHA-256 (hex) of the file it was copied from, and whether that was
// checked against the file's .sha256.
type restored struct {
	applied uint64
	origin  string
	sha256  string
	checked bool
}

// restoreBackup copies the backup at path into dir, checks the copy, and makes it dir's
// database file. When path.sha256 lies beside it, the file's SHA-256, hashed as it is copied,
// must be the one it gives, or nothing is restored; without one, a note on progress says that
// it could not be checked. dir must hold no node data, and no node may run on it. The copy is
// made in a directory of its own in dir and renamed once whole and checked, so that a restore
// cut short never leaves a partial database for a node to start on. With show, a large backup's
// copy and check are reported on progress; a dir of another owner is warned of there always.
// When ctx ends (Ctrl-C), the check or the copy stops and nothing is restored.
func restoreBackup(ctx context.Context, path, dir string, progress io.Writer, show bool) (_ restored, err error) {
	info, err := os.Stat(path)
	if err != nil {
		return restored{}, fmt.Errorf("FILE: %w", err)
	}
	show = show && info.Size() >= progressFrom
	// A node running on dir would go on serving from the files that were moved aside, and what
	// it acknowledges would never reach the restored database.
	if node.Serving(dir) {
		return restored{}, fmt.Errorf("--data-dir: a node is serving on %s: stop it first", dir)
	}
	// A serving node's own database (FILE in its data directory): it writes and checkpoints while
	// the file and its log are copied one after the other, so that the copy may mix two moments.
	real, err := filepath.EvalSymlinks(path) // a link to it, too (review AC, AC10)
	if err != nil {
		return restored{}, fmt.Errorf("FILE: %w", err)
	}
	if src := filepath.Dir(real); filepath.Base(real) == node.DatabaseName && node.Serving(src) {
		return restored{}, fmt.Errorf("FILE: a node is serving on %s: take a backup of it (knooppunt backup --node ...), or stop it first and restore its files", src)
	}
	// A node's data is its database and its Raft log; what else the directory holds (the config,
	// the CA and the certificates that init puts there) may stay, so that a node made with init
	// is restored in place once its data is moved aside.
	for _, name := range nodeData {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return restored{}, fmt.Errorf("--data-dir: %s holds a node's data (%s): restore only where there is none: move %s aside first (its config and keys may stay)",
				dir, name, strings.Join(nodeData, ", "))
		} else if !errors.Is(err, os.ErrNotExist) {
			return restored{}, fmt.Errorf("--data-dir: %w", err)
		}
	}
	// The hash that backup wrote beside FILE, read before anything is made. It is of FILE alone:
	// a log beside a backup, which knooppunt backup never leaves, would be folded in unchecked.
	want, err := readSum(path)
	if err != nil {
		return restored{}, fmt.Errorf("FILE: %w; nothing was restored", err)
	}
	if wal, err := os.Stat(path + "-wal"); want != "" && err == nil && wal.Size() > 0 {
		return restored{}, fmt.Errorf("FILE: %s-wal lies beside %s, and %s%s gives the hash of %s alone: a backup has no write-ahead log, and its commits would be restored unchecked; nothing was restored",
			path, path, path, sumSuffix, path)
	}
	warnOwner(dir, progress)
	// The directories this restore makes go again when it fails: a retry finds none.
	made, err := mkdirs(dir)
	defer func() {
		if err != nil {
			for _, d := range made {
				os.Remove(d)
			}
		}
	}()
	if err != nil {
		return restored{}, fmt.Errorf("--data-dir: %w", err)
	}
	// What a restore that was killed left here: its staged copy, or its partial database.
	for _, pattern := range []string{stagePrefix + "*", besidePattern(node.DatabaseName)} {
		for _, l := range db.Matching(dir, pattern) {
			if err := os.RemoveAll(l); err != nil {
				return restored{}, fmt.Errorf("--data-dir: what an earlier restore left: %w", err)
			}
		}
	}
	// The files at path are only read: SQLite, opening them in place, would make a -shm (and
	// an empty -wal) beside them, in what may be a stopped replica's data directory. A copy is
	// made where the restored database goes, and checked, and moved into place once it checks.
	staged, sum, err := stage(ctx, path, dir, progress, show)
	if staged != "" {
		defer os.RemoveAll(filepath.Dir(staged))
	}
	if ctx.Err() != nil {
		return restored{}, fmt.Errorf("stopped while copying %s (%v): nothing was restored to %s", path, context.Cause(ctx), dir)
	}
	if err != nil {
		return restored{}, err
	}
	if want != "" && sum != want {
		return restored{}, fmt.Errorf("FILE: %s: its SHA-256 is %s, not the %s that %s%s gives: the backup was changed or damaged since it was made; nothing was restored",
			path, sum, want, path, sumSuffix)
	}
	if show {
		fmt.Fprintf(progress, "checking %s (%d bytes): every page is read\n", path, info.Size())
	}
	applied, origin, err := db.CheckBackup(ctx, staged)
	if ctx.Err() != nil {
		return restored{}, fmt.Errorf("stopped while checking %s (%v): nothing was restored", path, context.Cause(ctx))
	}
	if err != nil {
		return restored{}, fmt.Errorf("FILE: %s is not a whole knooppunt database this version can open: %w%s", path, err, walLeftBehind(path, staged))
	}
	if applied == 0 {
		return restored{}, fmt.Errorf("FILE: %s holds nothing a node applied: nothing to restore%s", path, walLeftBehind(path, staged))
	}
	// The feed goes on past every seq the lost database gave after the backup, in the copy
	// itself, so that every replica started from it numbers alike (a restore of a copy that no
	// node has started on keeps its numbers: one restore, copied to a group's replicas).
	kept, err := db.MarkRestored(staged, time.Now())
	if err != nil {
		return restored{}, fmt.Errorf("--data-dir: %w", err)
	}
	switch {
	case kept:
		// A group's replica from the first one's restore: no backup, and no audit entry holds
		// its hash (review AH, AH5).
		fmt.Fprintf(progress, "%s is a restore that no node has started on: its change feed keeps the numbers that restore gave it, as a group's replicas restored from it need\n", path)
	default:
		if want == "" {
			fmt.Fprintf(progress, "knooppunt: note: no %s%s lies beside %s, so restore could not check that it is the file that was made. Its SHA-256 is %s: for a backup, compare it with the \"sha256\" that knooppunt audit list --action backup shows on the node that made it\n",
				path, sumSuffix, path, sum)
		}
		fmt.Fprintf(progress, "if the node is a Raft group: restore %s (not %s) into every other replica's data directory before any starts, so that their change feeds number alike\n",
			filepath.Join(dir, node.DatabaseName), path)
	}
	// The copy is already on the data directory's disk: it is moved into place, not copied a
	// second time.
	f, err := os.OpenFile(staged, os.O_RDWR, 0)
	if err == nil {
		err = (&besideFile{File: f, target: filepath.Join(dir, node.DatabaseName)}).commit()
	}
	if err != nil {
		return restored{}, fmt.Errorf("--data-dir: %w", err)
	}
	return restored{applied: applied, origin: origin, sha256: sum, checked: want != ""}, nil
}

// warnOwner says on w when the data directory dir exists and belongs to another user than the
// one restoring: a node run as its owner (the service user) may not open the database a restore
// as root leaves there. A directory of root's is no service user's (a volume's root, which a
// pod's fsGroup opens to its node), and is not warned of.
func warnOwner(dir string, w io.Writer) {
	uid, name, ok := fileOwner(dir)
	if !ok || uid == os.Getuid() || uid == 0 {
		return
	}
	owner := cmp.Or(name, strconv.Itoa(uid))
	fmt.Fprintf(w, "knooppunt: warning: %s belongs to %s, not to you (uid %d): the node, run as %s, may not open the database this restore writes; restore as that user (sudo -u %s knooppunt restore ...), or give it the files after (chown -R)\n",
		dir, owner, os.Getuid(), owner, owner)
}

// stagePrefix begins the name of the directory in which a restore stages its copy.
const stagePrefix = ".knooppunt-restore-"

// stage copies the database file at path into a new temporary directory inside dir, with its
// write-ahead log if one lies beside it (a stopped replica's files, as a crash leaves them),
// folds the log into the copy, and returns the copy's path ("" if it made none) and the SHA-256
// (hex) of the file at path, hashed as it is copied. The files at path are only read. The copy is made where the restored database goes, not in the system's
// temporary directory, which may be too small for it (a tmpfs in memory) when a group is
// recovered from a survivor's files.
func stage(ctx context.Context, path, dir string, progress io.Writer, show bool) (staged, sum string, err error) {
	tmp, err := os.MkdirTemp(dir, stagePrefix)
	if err != nil {
		return "", "", fmt.Errorf("--data-dir: %w", err)
	}
	staged = filepath.Join(tmp, node.DatabaseName)
	h := sha256.New()
	info, err := os.Stat(path)
	if err == nil {
		bar := newBar(progress, info.Size(), "copying", show)
		err = copyFile(ctx, path, staged, io.MultiWriter(bar, h))
		bar.Finish()
	}
	if err != nil {
		return staged, "", fmt.Errorf("FILE: %w", err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if wal, err := os.Stat(path + "-wal"); err != nil || wal.Size() == 0 {
		return staged, sum, nil
	}
	err = copyFile(ctx, path+"-wal", staged+"-wal", io.Discard)
	if err == nil {
		err = db.FoldWAL(staged)
	}
	if err != nil {
		return staged, "", fmt.Errorf("FILE: %s has a write-ahead log beside it (%s-wal) that holds commits the file alone lacks, and it could not be folded in: %w", path, path, err)
	}
	fmt.Fprintf(progress, "%s has a write-ahead log beside it: its commits are folded into the copy that is restored\n", path)
	return staged, sum, nil
}

// walLeftBehind is a hint for a restore of a database file that holds no data: when it was in
// write-ahead-log mode (or is empty) and no log lies beside it, its data may all be in a
// FILE-wal that was not copied with it.
func walLeftBehind(path, staged string) string {
	if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() > 0 {
		return ""
	}
	f, err := os.Open(staged)
	if err != nil {
		return ""
	}
	defer f.Close()
	// The SQLite header: bytes 18 and 19 are 2 in WAL mode; bytes 60 to 63 the schema version
	// (user_version), which a knooppunt database never leaves at 0.
	h := make([]byte, 64)
	if n, _ := io.ReadFull(f, h); n == 0 || (n == len(h) && h[18] == 2 && binary.BigEndian.Uint32(h[60:]) == 0) {
		return fmt.Sprintf(" (no data: was %s-wal left behind? Copy it beside %s and restore again)", path, path)
	}
	return ""
}

// copyFile copies the file at from to a new file to, readable by its owner alone, until ctx
// ends (Ctrl-C); what it copies is also written to progress.
func copyFile(ctx context.Context, from, to string, progress io.Writer) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.MultiWriter(dst, progress), ctxReader{ctx, src})
	return errors.Join(err, dst.Close())
}

// ctxReader reads r until ctx ends, then fails: for a copy that Ctrl-C stops between reads.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// mkdirs makes dir and the parents it lacks, as os.MkdirAll does, and returns the directories it
// made, the deepest first, so that a caller that fails can remove them.
func mkdirs(dir string) (made []string, err error) {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			break
		}
		made = append(made, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return made, err
	}
	return made, nil
}

// sumSuffix ends the name of the file beside a backup that gives its SHA-256.
const sumSuffix = ".sha256"

// writeSum writes the SHA-256 sum (hex) of the backup out into a file beside out.sha256, as
// sha256sum writes it ("<hex>  <name>", so that sha256sum -c out.sha256 in out's directory
// checks out), and returns it to commit once out is in place.
func writeSum(out, sum string) (*besideFile, error) {
	f, err := createBeside(out + sumSuffix)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(f, "%s  %s\n", sum, filepath.Base(out)); err != nil {
		f.discard()
		return nil, fmt.Errorf("%s: %w", out+sumSuffix, err)
	}
	return f, nil
}

// readSum returns the SHA-256 (hex, lower case) that path.sha256 gives, "" when there is none.
// It takes the first line as sha256sum writes it, whatever name it gives: the file is bound to
// its backup by its own name, which a backup renamed with it keeps.
func readSum(path string) (string, error) {
	b, err := os.ReadFile(path + sumSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	sum, _, _ := strings.Cut(strings.TrimSpace(line), " ")
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 2*sha256.Size {
		return "", fmt.Errorf("%s%s gives no SHA-256 (want \"<64 hex digits>  %s\", as knooppunt backup and sha256sum write it): copy it again from where the backup is kept, or move it aside to restore %s unchecked",
			path, sumSuffix, filepath.Base(path), path)
	}
	return strings.ToLower(sum), nil
}
