package records_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/records"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestWatchRefusesACursorFromBeforeARestore: a node restored from a backup (as knooppunt restore
// makes it) refuses, with OUT_OF_RANGE on cursor, a cursor that only the database lost at the
// restore gave, and one past its feed's end that the feed does not reach, where it resumed there
// and skipped the changes the restored node numbered anew (review J, F9). A cursor of the backup's
// feed, and the last_seq that status gives, are taken.
func TestWatchRefusesACursorFromBeforeARestore(t *testing.T) {
	records.SetCursorWait(t.Cleanup, 200*time.Millisecond)
	old := startNode(t)
	oc := client(t, old)
	put(t, oc, shelter("before", 1))
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := old.DB().Copy(callCtx(t), backup); err != nil {
		t.Fatal(err)
	}
	backupSeq, _ := old.DB().LastSeq()
	var lost []int64
	for _, id := range []string{"after-1", "after-2", "after-3"} {
		lost = append(lost, put(t, oc, shelter(id, 1)).Seq)
	}

	// The node stops as an operator stops it before a restore (and once more when the test ends).
	if err := old.Stop(callCtx(t)); err != nil {
		t.Fatal(err)
	}
	dir := dataDir(t)
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, node.DatabaseName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MarkRestored(filepath.Join(dir, node.DatabaseName), time.Now()); err != nil {
		t.Fatal(err)
	}
	n := startNodeAt(t, dir)
	c := client(t, n)
	st, err := pb.NewStatusServiceClient(dial(t, n)).Status(callCtx(t), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var now []int64
	for _, id := range []string{"restored-1", "restored-2", "restored-3", "restored-4"} {
		now = append(now, put(t, c, shelter(id, 1)).Seq)
	}
	if slices.ContainsFunc(now, func(s int64) bool { return s <= lost[len(lost)-1] }) {
		t.Fatalf("the restored node numbers its changes %v, again among the lost %v", now, lost)
	}

	refused := func(cursor int64, says string) {
		t.Helper()
		s, _ := watch(t, c, &pb.WatchRequest{Cursor: cursor})
		_, err := s.Recv()
		field, reason := api.Field(err)
		if status.Code(err) != codes.OutOfRange || field != "cursor" || !strings.Contains(reason, says) || !strings.Contains(reason, "read last_seq from Status (`knooppunt status`: change feed at N), list again, then watch from that last_seq") {
			t.Errorf("Watch from %d: %v (field %q); want OUT_OF_RANGE on cursor saying %q", cursor, err, field, says)
		}
	}
	refused(lost[0], "from before this node was restored from a backup")
	refused(lost[2], "from before this node was restored from a backup")
	refused(now[3]+100, "past the end of this node's change feed")

	// The backup's own cursor resumes at the changes after the restore.
	s, _ := watch(t, c, &pb.WatchRequest{Cursor: backupSeq})
	if got := recvN(t, s, 4); got[0].id != "restored-1" || got[3].seq != now[3] {
		t.Errorf("from the backup's cursor %d: %v, want restored-1 to 4", backupSeq, got)
	}
	// As does status's last_seq of before the writes.
	s, _ = watch(t, c, &pb.WatchRequest{Cursor: st.LastSeq})
	if got := recvN(t, s, 4); got[0].id != "restored-1" {
		t.Errorf("from status's last_seq %d: %v, want restored-1 to 4", st.LastSeq, got)
	}
}
