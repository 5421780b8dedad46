package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
)

// TestCopyWhileWriting: a copy taken while entries are applied is whole (integrity_check, schema)
// and consistent: it holds exactly the records of the entries up to the applied index it
// reports, one record an entry. Writes go on meanwhile.
func TestCopyWhileWriting(t *testing.T) {
	d := openDB(t, filepath.Join(t.TempDir(), "knooppunt.db"))
	fillForBackup(t, d, "before", 200)
	first, err := d.AppliedIndex()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := d.Apply(first+i, []*db.Write{put(fmt.Sprintf("during-%06d", i), `{"beds_free":1}`)}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var copies []string
	for i := range 3 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("copy-%d.db", i))
		applied, err := d.Copy(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if got, _, err := db.CheckBackup(t.Context(), path); err != nil || got != applied {
			t.Fatalf("copy %d: CheckBackup = %d, %v; Copy said %d", i, got, err, applied)
		}
		h, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = h.QueryRow(`SELECT count(*) FROM records WHERE tombstone = 0`).Scan(&n)
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		// 200 records before, less the one deleted; then one new record an entry.
		if want := 199 + int(applied-first); n != want {
			t.Fatalf("copy %d at entry %d holds %d records, want %d", i, applied, n, want)
		}
		copies = append(copies, path)
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if last, _ := d.AppliedIndex(); last <= first {
		t.Fatalf("no entry was applied while the copies were taken (applied index %d)", last)
	}
	if _, err := d.Copy(context.Background(), copies[0]); err == nil {
		t.Fatal("Copy over an existing file: want an error")
	}
}

// BenchmarkCopy measures a backup's copy (db.Copy, VACUUM INTO from a read-only connection) of
// a database of 100,000 records against copying its file as it is, in turns: ratio is Copy's
// time ÷ the file copy's.
func BenchmarkCopy(b *testing.B) {
	d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for i := range 100 {
		writes := make([]*db.Write, 1000)
		for j := range writes {
			writes[j] = put(fmt.Sprintf("r%03d-%04d", i, j), `{"municipality":"Utrecht","beds_total":120,"beds_free":14,"notes":"Sporthal De Koppel, vanaf vrijdag"}`)
		}
		if _, err := d.Apply(uint64(i+1), writes); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Checkpoint(context.Background()); err != nil {
		b.Fatal(err)
	}
	var copyT, fileT time.Duration
	var size int64
	for i := range b.N {
		dir := b.TempDir()
		t0 := time.Now()
		if _, err := d.Copy(context.Background(), filepath.Join(dir, fmt.Sprintf("c%d.db", i))); err != nil {
			b.Fatal(err)
		}
		copyT += time.Since(t0)
		t0 = time.Now()
		src, err := os.Open(d.Path())
		if err != nil {
			b.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%d.db", i)))
		if err != nil {
			b.Fatal(err)
		}
		size, err = io.Copy(dst, src)
		if err != nil {
			b.Fatal(err)
		}
		dst.Sync()
		dst.Close()
		src.Close()
		fileT += time.Since(t0)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(copyT.Milliseconds())/float64(b.N), "copy-ms")
	b.ReportMetric(float64(fileT.Milliseconds())/float64(b.N), "file-ms")
	b.ReportMetric(float64(copyT)/float64(fileT), "ratio")
	b.ReportMetric(float64(size)/(1<<20), "MiB")
}
