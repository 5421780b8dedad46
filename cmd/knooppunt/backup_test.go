package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/proctest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestBackupAndRestore: a backup of a running node, made while it serves, becomes a new node's
// data directory with restore: that node holds what the backup held and not what came after,
// takes writes after it (the log goes on after the backup's last entry: none is skipped as
// applied before), and keeps them across a restart. Restore refuses a data directory that holds
// data and a file that is no knooppunt database, and changes nothing then.
func TestBackupAndRestore(t *testing.T) {
	dir := shortDir(t)
	proc, _ := serveNode(t, dir)
	addr := "unix://" + filepath.Join(dir, "data", node.SocketName)
	put := func(addr, id, body string) result {
		t.Helper()
		return cli(t, nil, "", "record", "put", "--node", addr, "--id", id, "--kind", "shelter.capacity", "--crisis", "oekraine",
			"--region", "VR09", "--classification", "internal", "--body", body)
	}
	put(addr, "houten", `{"municipality":"Houten","beds_total":40,"beds_free":4}`).want(t, 0)
	put(addr, "zeist", `{"municipality":"Zeist","beds_total":80,"beds_free":8}`).want(t, 0)

	backup := filepath.Join(dir, "backup.db")
	r := cli(t, nil, "", "backup", backup, "--node", addr, "-q").want(t, 0)
	if !strings.HasPrefix(r.stdout, backup+": ") || !strings.Contains(r.stdout, " bytes, up to log entry ") {
		t.Fatalf("backup printed %q", r.stdout)
	}
	var js struct {
		File    string `json:"file"`
		Bytes   int64  `json:"bytes"`
		Applied uint64 `json:"applied_index"`
	}
	// An existing file is kept: it may be the last good backup.
	before, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "backup", backup, "--node", addr, "-q").want(t, 1); !strings.Contains(r.stderr, "knooppunt: FILE: "+backup+" exists (") ||
		!strings.Contains(r.stderr, "give --overwrite to replace it") {
		t.Fatalf("backup over an existing file: %q", r.stderr)
	}
	if after, err := os.ReadFile(backup); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("a refused backup changed %s: %v", backup, err)
	}
	cli(t, nil, "", "backup", backup, "--node", addr, "-q", "--overwrite").want(t, 0)
	// A name that SQLite, given it as a URI unescaped, cut at the '#' and '?'.
	r = cli(t, nil, "", "backup", filepath.Join(dir, "backup#2?x=1%41.db"), "--node", addr, "-o", "json").want(t, 0)
	r.oneJSON(t, &js)
	if info, err := os.Stat(js.File); err != nil || info.Size() != js.Bytes || info.Mode().Perm() != 0o600 || js.Applied == 0 {
		t.Fatalf("backup -o json %+v; the file: %v, %v", js, info, err)
	}
	// A current replica's copy has no "behind" at all, not an empty one (review AA, AA16).
	if strings.Contains(r.stdout, `"behind"`) {
		t.Errorf("backup -o json of a current replica: %s", r.stdout)
	}
	// After the backup: a new record and a change, which the restored node will not hold.
	put(addr, "bunnik", `{"municipality":"Bunnik","beds_total":20,"beds_free":2}`).want(t, 0)
	put(addr, "zeist", `{"municipality":"Zeist","beds_total":80,"beds_free":1}`).want(t, 0)
	if err := proc.Term(t, 30*time.Second); err != nil {
		t.Fatalf("stop the node: %v", err)
	}

	// Bad input first: nothing is written.
	old := filepath.Join(dir, "data")
	if r := cli(t, nil, "", "restore", backup, "--data-dir", old).want(t, 1); !strings.Contains(r.stderr, "holds a node's data (knooppunt.db): restore only where there is none") {
		t.Errorf("restore over a data directory: %q", r.stderr)
	}
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("no database"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "restored")
	if r := cli(t, nil, "", "restore", junk, "--data-dir", fresh).want(t, 1); !strings.Contains(r.stderr, "is not a whole knooppunt database") {
		t.Errorf("restore of a file that is no database: %q", r.stderr)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("a refused restore left %s: %v", fresh, err)
	}

	// A directory that holds no node data takes it, whatever else it holds: the root of a new
	// file system with its lost+found, or what init put there (the config, the keys), which stay.
	if err := os.MkdirAll(filepath.Join(fresh, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fresh, "node.yaml"), []byte("org: local.crisis.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r = cli(t, nil, "", "restore", backup, "--data-dir", fresh).want(t, 0)
	if !strings.HasPrefix(r.stdout, fresh+": restored up to log entry ") || !strings.Contains(r.stdout, "the database of local.crisis.test;") ||
		!strings.Contains(r.stdout, "with the config in it: knooppunt serve --data-dir "+fresh+"\n") {
		t.Fatalf("restore printed %q", r.stdout)
	}
	// A backup's restore says how a group's other replicas take it (review AA, AA1).
	if want := "if the node is a Raft group: restore " + filepath.Join(fresh, node.DatabaseName) + " (not " + backup + ") into every other replica's data directory before any starts"; !strings.Contains(r.stderr, want) {
		t.Errorf("restore of a backup said %q, want it to say %q", r.stderr, want)
	}
	if entries, err := os.ReadDir(fresh); err != nil || len(entries) != 3 || entries[0].Name() != node.DatabaseName || entries[1].Name() != "lost+found" || entries[2].Name() != "node.yaml" {
		t.Fatalf("the restored directory holds %v (%v), want %s, lost+found and node.yaml", entries, err, node.DatabaseName)
	}
	// The restore moved the feed past the backup's; a restore of it, which no node has started
	// on, keeps where it moved it: a group's other replicas number alike.
	again := filepath.Join(dir, "again")
	// Nor does it ask to compare its hash with a backup's audit entry, which no entry holds
	// (review AH, AH5).
	if r := cli(t, nil, "", "restore", filepath.Join(fresh, node.DatabaseName), "--data-dir", again).want(t, 0); !strings.Contains(r.stderr, "is a restore that no node has started on") ||
		strings.Contains(r.stderr, "could not check") || strings.Contains(r.stderr, "Raft group") {
		t.Errorf("restore of a restore no node started on said %q", r.stderr)
	}
	for _, d := range []string{fresh, again} {
		if restored, resumed := readRestored(t, filepath.Join(d, node.DatabaseName)); restored >= resumed || resumed < start.UnixMicro() {
			t.Errorf("%s: restored at %d, resumed at %d: want the feed moved to the restore's time (%d)", d, restored, resumed, start.UnixMicro())
		}
	}
	if a, b := fmt.Sprint(readRestored(t, filepath.Join(fresh, node.DatabaseName))), fmt.Sprint(readRestored(t, filepath.Join(again, node.DatabaseName))); a != b {
		t.Errorf("the restore of the restore goes on at %s, the restore at %s", b, a)
	}
	// Another org's node does not serve the backup's records as its own.
	otherCfg := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(otherCfg, []byte("org: politie.crisis.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "serve", "--data-dir", fresh, "--config", otherCfg).want(t, 1); !strings.Contains(r.stderr, "is that of local.crisis.test, not of this node's org politie.crisis.test") {
		t.Errorf("serve of another org on the restored directory: %q", r.stderr)
	}
	cfg := filepath.Join(dir, "node.yaml")
	serve := func() *proctest.Proc {
		p := proctest.Start(t, nil, "serve", "--data-dir", fresh, "--config", cfg, "--log-level", "warn")
		waitServing(t, p, filepath.Join(fresh, node.SocketName))
		return p
	}
	p := serve()
	addr = "unix://" + filepath.Join(fresh, node.SocketName)
	get := func(id string, code int) string {
		t.Helper()
		return cli(t, nil, "", "record", "get", id, "--node", addr, "-o", "json").want(t, code).stdout
	}
	if out := get("zeist", 0); !strings.Contains(out, `"beds_free": 8`) || !strings.Contains(out, `"version": 1`) {
		t.Errorf("zeist on the restored node, want version 1 as backed up:\n%s", out)
	}
	get("houten", 0)
	get("bunnik", 1) // written after the backup
	if r := put(addr, "zeist", `{"municipality":"Zeist","beds_total":80,"beds_free":5}`).want(t, 0); r.stdout != "zeist version 2\n" {
		t.Errorf("a change on the restored node: %q, want version 2", r.stdout)
	}
	put(addr, "vianen", `{"municipality":"Vianen","beds_total":30,"beds_free":3}`).want(t, 0)
	if err := p.Term(t, 30*time.Second); err != nil {
		t.Fatalf("stop the restored node: %v", err)
	}
	serve()
	if out := get("zeist", 0); !strings.Contains(out, `"beds_free": 5`) || !strings.Contains(out, `"version": 2`) {
		t.Errorf("zeist after a restart of the restored node:\n%s", out)
	}
	get("vianen", 0)
}

// TestRestoreChecksTheBackupsSHA256: backup writes FILE.sha256 beside the backup, as sha256sum
// writes it and checks it, with the hash the node audited; restore refuses a backup with a byte
// changed inside a record, before it restores anything (integrity_check cannot see it, and the
// node served the changed record as its org's own: review AA, AA4), and restores one without a
// FILE.sha256, saying that it could not check it and what its hash is.
func TestRestoreChecksTheBackupsSHA256(t *testing.T) {
	addr, dir := servedNode(t)
	cli(t, nil, "", "record", "put", "--node", addr, "--id", "houten", "--kind", "shelter.capacity", "--crisis", "oekraine",
		"--region", "VR09", "--classification", "internal", "--body", `{"municipality":"Houten","beds_total":40,"beds_free":4}`).want(t, 0)
	backup := filepath.Join(dir, "night.db")
	var js struct {
		SHA256 string `json:"sha256"`
	}
	cli(t, nil, "", "backup", backup, "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &js)
	file, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(file))
	if js.SHA256 != sum {
		t.Errorf("backup -o json gives sha256 %q, the file's is %s", js.SHA256, sum)
	}
	side, err := os.ReadFile(backup + ".sha256")
	if info, _ := os.Stat(backup + ".sha256"); err != nil || string(side) != sum+"  night.db\n" || info.Mode().Perm() != 0o600 {
		t.Fatalf("night.db.sha256 holds %q (%v, %v), want %q with mode 0600", side, info, err, sum+"  night.db\n")
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		c := exec.Command("sha256sum", "-c", "night.db.sha256")
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil || string(out) != "night.db: OK\n" {
			t.Errorf("sha256sum -c night.db.sha256: %v\n%s", err, out)
		}
	}
	if r := cli(t, nil, "", "audit", "list", "--node", addr, "--action", "backup", "-o", "json").want(t, 0); !strings.Contains(r.stdout, sum) {
		t.Errorf("the audit log's backup entry does not give the file's SHA-256 %s:\n%s", sum, r.stdout)
	}
	if r := cli(t, nil, "", "backup", filepath.Join(dir, "table.db"), "--node", addr, "-q").want(t, 0); !regexp.MustCompile(`, SHA-256 [0-9a-f]{64} \(in ` + regexp.QuoteMeta(filepath.Join(dir, "table.db.sha256")) + `\)\n$`).MatchString(r.stdout) {
		t.Errorf("backup printed %q, want its SHA-256 and where it is", r.stdout)
	}

	// A byte changed inside a record: the file is still a whole database.
	bad := filepath.Join(dir, "bad.db")
	at := bytes.Index(file, []byte(`"beds_free":4`))
	if at < 0 {
		t.Fatal("the backup does not hold the record's body as written: the test changes nothing in it")
	}
	changed := bytes.Clone(file)
	changed[at+len(`"beds_free":`)] = '9'
	if err := os.WriteFile(bad, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad+".sha256", side, 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "restored")
	want := fmt.Sprintf("knooppunt: FILE: %s: its SHA-256 is %x, not the %s that %s.sha256 gives: the backup was changed or damaged since it was made; nothing was restored\n",
		bad, sha256.Sum256(changed), sum, bad)
	if r := cli(t, nil, "", "restore", bad, "--data-dir", target).want(t, 1); r.stderr != want {
		t.Errorf("restore of a changed backup: %q\nwant %q", r.stderr, want)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore made %s: %v", target, err)
	}
	// Into a directory that exists: it holds nothing after.
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	cli(t, nil, "", "restore", bad, "--data-dir", target).want(t, 1)
	if entries, err := os.ReadDir(target); err != nil || len(entries) != 0 {
		t.Errorf("a refused restore left %v in %s (%v)", entries, target, err)
	}
	// A .sha256 that gives no hash, and a log beside a backup that the hash does not cover.
	if err := os.WriteFile(bad+".sha256", []byte("not a hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "restore", bad, "--data-dir", target).want(t, 1); !strings.Contains(r.stderr, "knooppunt: FILE: "+bad+".sha256 gives no SHA-256") {
		t.Errorf("restore with a .sha256 that gives no hash: %q", r.stderr)
	}
	if err := os.WriteFile(backup+"-wal", []byte("commits"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "restore", backup, "--data-dir", target).want(t, 1); !strings.Contains(r.stderr, "knooppunt: FILE: "+backup+"-wal lies beside "+backup) {
		t.Errorf("restore of a backup with a log beside it: %q", r.stderr)
	}
	if err := os.Remove(backup + "-wal"); err != nil {
		t.Fatal(err)
	}

	// The backup as made restores, checked.
	r := cli(t, nil, "", "restore", backup, "--data-dir", target).want(t, 0)
	if !strings.HasSuffix(r.stdout, "\n"+backup+": SHA-256 "+sum+" (matches "+backup+".sha256)\n") || strings.Contains(r.stderr, "could not check") {
		t.Errorf("restore of the backup as made: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	// Without its .sha256: restored, with a note that it could not be checked.
	alone := filepath.Join(dir, "alone.db")
	if err := os.WriteFile(alone, file, 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(t, nil, "", "restore", alone, "--data-dir", filepath.Join(dir, "restored2")).want(t, 0)
	note := "knooppunt: note: no " + alone + ".sha256 lies beside " + alone + ", so restore could not check that it is the file that was made. Its SHA-256 is " + sum +
		": for a backup, compare it with the \"sha256\" that knooppunt audit list --action backup shows on the node that made it\n"
	if strings.Count(r.stderr, note) != 1 || !strings.HasSuffix(r.stdout, "\n"+alone+": SHA-256 "+sum+" (not checked: no "+alone+".sha256)\n") {
		t.Errorf("restore without a .sha256: stdout %q, stderr %q; want the note once:\n%s", r.stdout, r.stderr, note)
	}
}

// TestSystemdBackupUnit runs what deploy/systemd/knooppunt-backup@.service runs, against a
// serving node, with its paths moved into a temporary directory: it leaves a whole backup named
// by the replica and the time, with its .sha256, and deletes that replica's backups older than
// KEEP_DAYS with their .sha256 files, and no other file.
func TestSystemdBackupUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "knooppunt-backup@.service"))
	if err != nil {
		t.Fatal(err)
	}
	var script, keep string
	for _, line := range strings.Split(string(unit), "\n") {
		if s, ok := strings.CutPrefix(line, "ExecStart=/bin/sh -c '"); ok {
			script = strings.TrimSuffix(s, "'")
		}
		if s, ok := strings.CutPrefix(line, "Environment=KEEP_DAYS="); ok {
			keep = s
		}
	}
	if script == "" || keep == "" {
		t.Fatalf("the unit has no ExecStart=/bin/sh -c '…' or no Environment=KEEP_DAYS=:\n%s", unit)
	}
	dir := shortDir(t)
	serveNode(t, dir)
	backups := filepath.Join(dir, "backups")
	if err := os.Mkdir(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().AddDate(0, 0, -40)
	for _, name := range []string{"r1-2020-01-01T0230.db", "r1-2020-01-01T0230.db.sha256", "r2-2020-01-01T0230.db", "r2-2020-01-01T0230.db.sha256",
		"r1-yesterday.db", "r1-yesterday.db.sha256", "notes.txt"} {
		path := filepath.Join(backups, name)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(name, "2020") || name == "notes.txt" {
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	// As systemd runs it for knooppunt-backup@r1: %i is r1, %% is %.
	script = strings.NewReplacer("%i", "r1", "%%", "%",
		"/usr/local/bin/knooppunt", proctest.Binary(t),
		"/var/lib/knooppunt/%i", filepath.Join(dir, "data"),
		"/var/backups/knooppunt", backups).Replace(script)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(proctest.Env(), "KEEP_DAYS="+keep)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the unit's command: %v\n%s\n%s", err, script, out)
	}
	entries, err := os.ReadDir(backups)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 7 || !slices.Contains(names, "r2-2020-01-01T0230.db") || !slices.Contains(names, "r2-2020-01-01T0230.db.sha256") ||
		!slices.Contains(names, "r1-yesterday.db") || !slices.Contains(names, "r1-yesterday.db.sha256") ||
		!slices.Contains(names, "notes.txt") || slices.Contains(names, "r1-2020-01-01T0230.db") || slices.Contains(names, "r1-2020-01-01T0230.db.sha256") {
		t.Fatalf("after the unit ran, the backup directory holds %v: want the new backup and its .sha256, r2's, yesterday's, their .sha256 files and notes.txt", names)
	}
	fresh := regexp.MustCompile(`^r1-\d{4}-\d\d-\d\dT\d{4}\.db$`)
	for _, n := range names {
		if fresh.MatchString(n) {
			if _, _, err := db.CheckBackup(t.Context(), filepath.Join(backups, n)); err != nil {
				t.Errorf("the unit's backup %s: %v", n, err)
			}
			if !slices.Contains(names, n+".sha256") {
				t.Errorf("the unit's backup %s has no %s.sha256 beside it", n, n)
			}
			return
		}
	}
	t.Errorf("no r1-<date>T<time>.db among %v", names)
}

// TestBackupNotKeptIsNotTaken: a backup that the node sent but the client failed to keep (here
// its file may not grow past a few KiB) is not the replica's last backup: status still says none,
// until a backup is kept.
func TestBackupNotKeptIsNotTaken(t *testing.T) {
	addr, dir := servedNode(t)
	lastBackup := func() any {
		t.Helper()
		var st map[string]any
		cli(t, nil, "", "status", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &st)
		return st["last_backup_at"]
	}
	if got := lastBackup(); got != nil {
		t.Fatalf("before any backup: last_backup_at %v", got)
	}

	small := filepath.Join(dir, "small.db")
	cmd := exec.Command("sh", "-c", `ulimit -f 8 && exec "$0" "$@"`, proctest.Binary(t), "backup", small, "--node", addr, "-q")
	cmd.Env = proctest.Env()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "file too large") {
		t.Fatalf("a backup whose file cannot grow: %v\n%s", err, out)
	}
	if _, err := os.Stat(small); !os.IsNotExist(err) {
		t.Fatalf("a failed backup left %s: %v", small, err)
	}
	if got := lastBackup(); got != nil {
		t.Errorf("after a backup the client failed to keep: last_backup_at %v, want none", got)
	}
	if r := cli(t, nil, "", "status", "--node", addr).want(t, 0); !strings.Contains(r.stdout, "\nlast backup  none of this replica kept (knooppunt backup)\n") {
		t.Errorf("status after a backup the client failed to keep:\n%s", r.stdout)
	}

	cli(t, nil, "", "backup", filepath.Join(dir, "kept.db"), "--node", addr, "-q").want(t, 0)
	if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(lastBackup())); err != nil || time.Since(at) > time.Minute {
		t.Errorf("after a backup kept: last_backup_at %v (%v)", at, err)
	}
	if r := cli(t, nil, "", "status", "--node", addr).want(t, 0); !regexp.MustCompile(`\nlast backup  \S+ \(\d+s ago, of this replica, kept by knooppunt backup\)\n`).MatchString(r.stdout) {
		t.Errorf("status after a backup kept:\n%s", r.stdout)
	}
}

// TestRestoreFoldsTheWAL: a node's database file as a kill leaves it, its latest commits still
// in the write-ahead log beside it, is restored whole: restore used to count the log's commits in
// its check but copy the file alone, and the restored node lacked them (review23 M3).
func TestRestoreFoldsTheWAL(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(filepath.Join(live, node.DatabaseName))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r := &pb.Record{Id: fmt.Sprintf("s%d", i), Origin: "vr-utrecht.crisis.test", Kind: "sitrep", Crisis: "oekraine", Region: "VR09",
			Classification: pb.Classification_INTERNAL, Body: []byte(`{"title":"t","summary":"s"}`), UpdatedAt: timestamppb.Now()}
		if _, err := d.Apply(uint64(i+1), []*db.Write{r}); err != nil {
			t.Fatal(err)
		}
	}
	// The files as a kill leaves them: copied while the database is open, its log not folded in.
	killed := filepath.Join(dir, "killed")
	if err := os.Mkdir(killed, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(t.Context(), filepath.Join(live, node.DatabaseName)+suffix, filepath.Join(killed, node.DatabaseName)+suffix, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	if fi, err := os.Stat(filepath.Join(killed, node.DatabaseName+"-wal")); err != nil || fi.Size() == 0 {
		t.Fatalf("the killed copy has no write-ahead log to fold (%v): the test tests nothing", err)
	}
	// The copy that folds the log is made in the data directory, not in the system's temporary
	// directory, which may be too small (a tmpfs): here there is none.
	t.Setenv("TMPDIR", filepath.Join(dir, "no-tmp"))
	out := filepath.Join(dir, "restored")
	// What a restore that was killed left there goes.
	if err := os.MkdirAll(filepath.Join(out, ".knooppunt-restore-1234"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, ".knooppunt-restore-1234", node.DatabaseName), []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := restoreBackup(t.Context(), filepath.Join(killed, node.DatabaseName), out, io.Discard, false)
	if err != nil || got.applied != 5 {
		t.Fatalf("restore: applied %d, %v; want 5", got.applied, err)
	}
	if entries, err := os.ReadDir(out); err != nil || len(entries) != 1 || entries[0].Name() != node.DatabaseName {
		t.Errorf("the restored data directory holds %v (%v), want the database alone", entries, err)
	}
	// Ctrl-C stops the copy that folds the log, as it stops the check and the restore's copy.
	stopped, stop := context.WithCancel(t.Context())
	stop()
	if err := copyFile(stopped, filepath.Join(killed, node.DatabaseName), filepath.Join(dir, "stopped.db"), io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("copyFile after Ctrl-C: %v, want context.Canceled", err)
	}
	// A restore that fails leaves no data directory it made.
	notDB := filepath.Join(dir, "not.db")
	if err := os.WriteFile(notDB, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notDB+"-wal", []byte("not a log"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nor the parents it made for it.
	failed := filepath.Join(dir, "failed", "a", "b")
	if _, err := restoreBackup(t.Context(), notDB, failed, io.Discard, false); err == nil {
		t.Fatal("restore of a file that is no database succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "failed")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed restore left %s behind (%v)", filepath.Join(dir, "failed"), err)
	}
	r, err := db.Open(filepath.Join(out, node.DatabaseName))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range 5 {
		if _, err := r.Get(t.Context(), fmt.Sprintf("s%d", i)); err != nil {
			t.Errorf("s%d after the restore: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(killed, node.DatabaseName+"-wal")); err != nil {
		t.Errorf("restore changed the files it restored from: %v", err)
	}
}

// TestRestoreOddNames: restore reads the backup, and writes the data directory, by the names
// given, whatever they hold of what a SQLite URI reads as its own ('#' a fragment, '?' a query,
// '%' an escape). Unescaped, restore --data-dir 'rs/r#1' of a good backup found no database
// there and left an empty file rs/r.
func TestRestoreOddNames(t *testing.T) {
	dir := t.TempDir()
	const odd = "#1?x=1%41"
	live := filepath.Join(dir, "live")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	d := oneRecordDB(t, filepath.Join(live, node.DatabaseName))
	// As a kill leaves it, its record in the log alone: restore folds the log in too.
	bk := filepath.Join(dir, "bk"+odd, "night"+odd+".db")
	if err := os.Mkdir(filepath.Dir(bk), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(t.Context(), filepath.Join(live, node.DatabaseName)+suffix, bk+suffix, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "rs", "r"+odd)
	got, err := restoreBackup(t.Context(), bk, data, io.Discard, false)
	if err != nil || got.applied != 1 || got.origin != "vr-utrecht.crisis.test" {
		t.Fatalf("restore: applied %d, origin %q, %v; want 1 and vr-utrecht.crisis.test", got.applied, got.origin, err)
	}
	for d, want := range map[string][]string{
		filepath.Join(dir, "rs"): {"r" + odd},
		data:                     {node.DatabaseName},
		filepath.Dir(bk):         {filepath.Base(bk), filepath.Base(bk) + "-wal"},
	} {
		var got []string
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			got = append(got, e.Name())
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", d, got, want)
		}
	}
	r, err := db.Open(filepath.Join(data, node.DatabaseName))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Get(t.Context(), "s1"); err != nil {
		t.Errorf("s1 after the restore: %v", err)
	}
}

// TestRestoreRefusesADirectoryANodeServesOn: with a running node's data moved aside, restore
// into its directory is refused, or the node would go on serving from the moved files and
// what it acknowledged after would be lost: whether its socket answers, or (the socket gone)
// only its lock of the directory tells.
func TestRestoreRefusesADirectoryANodeServesOn(t *testing.T) {
	dir := shortDir(t)
	serveNode(t, dir)
	data, aside := filepath.Join(dir, "data"), filepath.Join(dir, "aside")
	if err := os.Mkdir(aside, 0o700); err != nil {
		t.Fatal(err)
	}
	moved, _ := filepath.Glob(filepath.Join(data, node.DatabaseName+"*"))
	for _, p := range append(moved, filepath.Join(data, "raft")) {
		if err := os.Rename(p, filepath.Join(aside, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(aside, node.DatabaseName)
	want := "knooppunt: --data-dir: a node is serving on " + data + ": stop it first\n"
	if r := cli(t, nil, "", "restore", backup, "--data-dir", data).want(t, 1); r.stderr != want {
		t.Errorf("restore beside a serving node: %q, want %q", r.stderr, want)
	}
	if err := os.Remove(filepath.Join(data, node.SocketName)); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "restore", backup, "--data-dir", data).want(t, 1); r.stderr != want {
		t.Errorf("restore beside a serving node whose socket is gone: %q, want %q", r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(data, node.DatabaseName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore wrote %s: %v", node.DatabaseName, err)
	}
}

// TestRestoreRefusesAServingNodesDatabase: the database file of a node that serves, which writes
// and checkpoints while its file and log are copied one after the other, is refused (review AA,
// AA5); a backup of it is the way.
func TestRestoreRefusesAServingNodesDatabase(t *testing.T) {
	dir := shortDir(t)
	serveNode(t, dir)
	data := filepath.Join(dir, "data")
	target := filepath.Join(dir, "copy")
	want := "knooppunt: FILE: a node is serving on " + data + ": take a backup of it (knooppunt backup --node ...), or stop it first and restore its files\n"
	if r := cli(t, nil, "", "restore", filepath.Join(data, node.DatabaseName), "--data-dir", target).want(t, 1); r.stderr != want {
		t.Errorf("restore of a serving node's database: %q, want %q", r.stderr, want)
	}
	// By a link to it too (review AC, AC10).
	link := filepath.Join(dir, "latest.db")
	if err := os.Symlink(filepath.Join(data, node.DatabaseName), link); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "restore", link, "--data-dir", target).want(t, 1); r.stderr != want {
		t.Errorf("restore of a link to a serving node's database: %q, want %q", r.stderr, want)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore made %s: %v", target, err)
	}
}

// oneRecordDB is a database at path that applied one record, at log entry 1; open.
func oneRecordDB(t *testing.T, path string) *db.DB {
	t.Helper()
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &pb.Record{Id: "s1", Origin: "vr-utrecht.crisis.test", Kind: "sitrep", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Body: []byte(`{"title":"t","summary":"s"}`), UpdatedAt: timestamppb.Now()}
	if _, err := d.Apply(1, []*db.Write{r}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRestoreOnlyReadsItsInput: restore of a stopped replica's own database file leaves nothing
// beside it (SQLite, opening it there, would make a -shm and a -wal). A database file copied
// without the write-ahead log that holds its data is refused with a hint at that log.
func TestRestoreOnlyReadsItsInput(t *testing.T) {
	dir := t.TempDir()
	stopped := filepath.Join(dir, "n1")
	if err := os.Mkdir(stopped, 0o700); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(stopped, node.DatabaseName)
	d := oneRecordDB(t, input)
	// As a kill leaves it, its data in the log alone: the file without its -wal holds none.
	alone := filepath.Join(dir, "alone.db")
	if err := copyFile(t.Context(), input, alone, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := restoreBackup(t.Context(), input, filepath.Join(dir, "restored"), io.Discard, false); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(stopped); err != nil || len(entries) != 1 {
		t.Errorf("restore left %v (%v) in the directory of its input, want %s alone", entries, err, node.DatabaseName)
	}
	_, err := restoreBackup(t.Context(), alone, filepath.Join(dir, "restored2"), io.Discard, false)
	if want := "(no data: was " + alone + "-wal left behind?"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("restore of a database file without its log: %v, want %q", err, want)
	}
}

// TestRestoreWarnsOfAnotherOwner: a restore into a directory of another user (the service
// user's, restored as root) says so, as the node, run as that user, may not open what it writes.
func TestRestoreWarnsOfAnotherOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to give a directory to another user")
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "backup.db")
	oneRecordDB(t, input).Close()
	for _, c := range []struct {
		uid  int
		warn bool
	}{{0, false}, {54321, true}} {
		data := filepath.Join(dir, fmt.Sprintf("data-%d", c.uid))
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(data, c.uid, c.uid); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := restoreBackup(t.Context(), input, data, &out, false); err != nil {
			t.Fatal(err)
		}
		if said := strings.Contains(out.String(), "warning: "+data+" belongs to 54321, not to you (uid 0)"); said != c.warn {
			t.Errorf("restore into a directory of uid %d said %q", c.uid, out.String())
		}
	}
}

// TestBackupOfACutOffReplicaWarns: knooppunt backup of a follower cut off from its group keeps
// the backup (a survivor's data is where recovery starts) and warns that it may be older than
// the group's, also in -o json; a current replica's backup says nothing of the kind.
func TestBackupOfACutOffReplicaWarns(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	leader.Put(t, clustertest.Shelter("before", 1))
	c.Converged(t, 20*time.Second, c.Replicas...)
	var cut *clustertest.Replica
	for _, r := range c.Replicas {
		if r != leader {
			cut = r
		}
	}
	dir := t.TempDir()
	if r := cli(t, nil, "", "backup", filepath.Join(dir, "current.db"), "--node", "unix://"+cut.SocketPath(), "-q").want(t, 0); strings.Contains(r.stderr, "warning") {
		t.Errorf("the backup of a current follower warns: %s", r.stderr)
	}
	cut.Node.Store().Isolate(true)
	defer cut.Node.Store().Isolate(false)
	leader.Put(t, clustertest.Shelter("after", 1))
	r := cli(t, nil, "", "backup", filepath.Join(dir, "cut.db"), "--node", "unix://"+cut.SocketPath(), "-q", "-o", "json").want(t, 0)
	var doc struct {
		Behind string `json:"behind"`
	}
	r.oneJSON(t, &doc)
	// Behind its group while it still knows the leader, or with no leader once its election
	// timeout has passed: which, depends on how soon the backup starts after the cut.
	if !strings.Contains(r.stderr, "knooppunt: warning: the replica was not current with its group") ||
		!strings.Contains(doc.Behind, "behind its group") && !strings.Contains(doc.Behind, "no leader") || !strings.Contains(r.stderr, doc.Behind) {
		t.Errorf("the backup of a cut-off follower: stderr %q, behind %q; want a warning, and why in the JSON", r.stderr, doc.Behind)
	}
}

// readRestored is where the last restore left the feed of the database at path (db.Restored).
func readRestored(t *testing.T, path string) (restored, resumed int64) {
	t.Helper()
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return d.Restored()
}

// earlierRelease serves a ClusterService as a node of an earlier release does: Backup streams
// file whole, as of log entry 1, and BackupKept is refused with kept.
type earlierRelease struct {
	pb.UnimplementedClusterServiceServer
	file []byte
	kept error
}

func (e earlierRelease) Backup(_ *pb.BackupRequest, stream pb.ClusterService_BackupServer) error {
	return stream.Send(&pb.BackupChunk{Data: e.file, Size: int64(len(e.file)), AppliedIndex: 1})
}

func (e earlierRelease) BackupKept(context.Context, *pb.BackupKeptRequest) (*pb.BackupKeptResponse, error) {
	return nil, e.kept
}

// TestBackupOfAnEarlierRelease: a node of an earlier release refuses BackupKept, which it does
// not know. The backup is kept, and the note says that it is complete and nothing needs doing,
// not that a permission is missing (review V, V5).
func TestBackupOfAnEarlierRelease(t *testing.T) {
	dir := shortDir(t)
	d := oneRecordDB(t, filepath.Join(dir, "node.db"))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, kept := range []error{
		status.Error(codes.PermissionDenied, "/knooppunt.v1.ClusterService/BackupKept is not open to any caller"),
		status.Error(codes.Unimplemented, "unknown method BackupKept for service knooppunt.v1.ClusterService"),
	} {
		t.Run(status.Code(kept).String(), func(t *testing.T) {
			lis, err := net.Listen("unix", filepath.Join(shortDir(t), "s.sock"))
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer()
			pb.RegisterClusterServiceServer(srv, earlierRelease{file: file, kept: kept})
			go srv.Serve(lis)
			t.Cleanup(srv.Stop)
			out := filepath.Join(t.TempDir(), "b.db")
			r := cli(t, nil, "", "backup", out, "--node", "unix://"+lis.Addr().String(), "-q").want(t, 0)
			want := "knooppunt: note: " + out + " is complete, whole and checked; nothing needs doing. The node's release predates telling it that a backup is kept: it counted the backup when it sent it.\n"
			if r.stderr != want {
				t.Errorf("stderr %q\nwant %q", r.stderr, want)
			}
			if got, _, err := db.CheckBackup(t.Context(), out); err != nil || got != 1 {
				t.Errorf("the backup kept: log entry %d, %v; want 1", got, err)
			}
		})
	}
}

// laterRelease serves a ClusterService as a node of a newer release does: Backup streams file
// whole, as of log entry 1, and BackupKept takes the SHA-256 the client kept.
type laterRelease struct {
	pb.UnimplementedClusterServiceServer
	file []byte
	kept chan string
}

func (l laterRelease) Backup(_ *pb.BackupRequest, stream pb.ClusterService_BackupServer) error {
	return stream.Send(&pb.BackupChunk{Data: l.file, Size: int64(len(l.file)), AppliedIndex: 1})
}

func (l laterRelease) BackupKept(_ context.Context, req *pb.BackupKeptRequest) (*pb.BackupKeptResponse, error) {
	l.kept <- req.Sha256
	return &pb.BackupKeptResponse{}, nil
}

// TestBackupOfALaterRelease: a knooppunt that takes backups and is older than the node (its
// database of a schema this knooppunt does not know) keeps the backup, whole, tells the node,
// and warns to upgrade it, also in -o json. It wrote nothing and failed, while the node audited a
// backup, so that nightly backups stopped at the first upgrade that changed the schema (review
// AH, AH1).
func TestBackupOfALaterRelease(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "node.db")
	d := oneRecordDB(t, path)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(fmt.Sprintf("PRAGMA user_version = %d", db.SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	h.Close()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("unix", filepath.Join(shortDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	kept := make(chan string, 2)
	pb.RegisterClusterServiceServer(srv, laterRelease{file: file, kept: kept})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	out := filepath.Join(t.TempDir(), "b.db")
	r := cli(t, nil, "", "backup", out, "--node", "unix://"+lis.Addr().String(), "-q", "-o", "json").want(t, 0)
	want := fmt.Sprintf("the node runs a newer release than this knooppunt (its database schema %d, this knooppunt's %d): %s is whole, but this knooppunt cannot check what it holds. Upgrade the knooppunt that takes backups to the node's release; restore this backup with that release",
		db.SchemaVersion+1, db.SchemaVersion, out)
	if r.stderr != "knooppunt: warning: "+want+"\n" {
		t.Errorf("stderr %q\nwant the warning %q", r.stderr, want)
	}
	var doc struct {
		SHA256    string `json:"sha256"`
		Unchecked string `json:"unchecked"`
	}
	r.oneJSON(t, &doc)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, file) {
		t.Fatalf("the backup kept: %d bytes, %v; want the %d bytes the node sent", len(got), err, len(file))
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(file))
	if doc.SHA256 != sum || doc.Unchecked != want {
		t.Errorf("-o json: sha256 %q, unchecked %q; want %s and the warning", doc.SHA256, doc.Unchecked, sum)
	}
	if side, err := os.ReadFile(out + ".sha256"); err != nil || !strings.HasPrefix(string(side), sum) {
		t.Errorf("%s.sha256: %q, %v; want %s", out, side, err, sum)
	}
	select {
	case got := <-kept:
		if got != sum {
			t.Errorf("the node was told %s is kept, want %s", got, sum)
		}
	default:
		t.Error("the node was not told that the backup is kept")
	}
}
