package ui

import (
	"html/template"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAdminSaysWhyThereIsNoLeader: the node's page says, as status does, that a replica out of
// its group is, and where to look; of one without a leader, how long it has been without one and
// the two causes; of one with a leader, its leader and nothing more. In both languages.
func TestAdminSaysWhyThereIsNoLeader(t *testing.T) {
	pages, cats := pagesAndCatalogues(t)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	started := timestamppb.New(now.Add(-3 * time.Hour))
	for _, c := range []struct {
		name          string
		lang          string
		st            *pb.StatusResponse
		leader, alert string // alert "": no warning
	}{
		{name: "led", lang: "nl", st: &pb.StatusResponse{RaftState: "Follower", Leader: "r1", StartedAt: started, LeaderSeenAt: timestamppb.New(now)},
			leader: "r1"},
		{name: "no leader for 7 minutes", lang: "nl", st: &pb.StatusResponse{RaftState: "Candidate", StartedAt: started, LeaderSeenAt: timestamppb.New(now.Add(-7 * time.Minute))},
			leader: "geen; deze replica kende er 7 min geleden nog een",
			alert:  "Deze replica kent geen leider: zij bereikt geen meerderheid van haar groep, of zij is verwijderd terwijl zij uit stond of afgesneden was, wat zij zelf niet kan weten (cluster status op een ander lid toont de groep)."},
		{name: "no leader since it started", lang: "en", st: &pb.StatusResponse{RaftState: "Follower", StartedAt: started},
			leader: "none since it started (3 h ago)",
			alert:  "This replica knows no leader: it reaches no majority of its group, or it was removed while it was down or cut off, which it cannot know"},
		{name: "not a member", lang: "nl", st: &pb.StatusResponse{RaftState: "Follower", NotMember: true, StartedAt: started},
			leader: "–",
			alert:  "Deze replica is geen lid van haar groep: zij is verwijderd, of wacht erop te worden toegevoegd (knooppunt cluster join op de leider)."},
		{name: "not a member, in English", lang: "en", st: &pb.StatusResponse{RaftState: "Follower", NotMember: true, StartedAt: started},
			leader: "–",
			alert:  "This replica is not a member of its group: it was removed, or waits to be joined (knooppunt cluster join on the leader)."},
		{name: "removed", lang: "nl", st: &pb.StatusResponse{RaftState: "Shutdown", StartedAt: started},
			leader: "–",
			alert:  "Deze replica is uit haar groep: verwijderd met cluster remove, of zij stopt."},
	} {
		l := &Lang{Code: c.lang, cat: cats[c.lang]}
		v := &adminView{Status: c.st, Cluster: &pb.ClusterStatusResponse{}}
		v.Leader, v.Warning = raftWarning(l, c.st, now)
		var b strings.Builder
		if err := pages["admin"].ExecuteTemplate(&b, "content", &page{L: l, Content: v}); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if want := `<dd id="raft-leider">` + c.leader + `</dd>`; !strings.Contains(out, want) {
			t.Errorf("%s: the page lacks %q:\n%s", c.name, want, out)
		}
		if got := strings.Contains(out, `id="raft-waarschuwing"`); got != (c.alert != "") || !strings.Contains(out, c.alert) {
			t.Errorf("%s: warning %v, want %q:\n%s", c.name, got, c.alert, out)
		}
	}
}

// pagesAndCatalogues parses the page templates and loads the languages' catalogues.
func pagesAndCatalogues(t *testing.T) (map[string]*template.Template, map[string]catalogue) {
	t.Helper()
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	return pages, cats
}

// TestExerciseBannerNamesEarlierReleases: the banner of a page in an exercise names the partners
// that take no part, and apart from them those whose nodes answer but run an earlier release that
// does not say whether they do (review V, V5); a partner merely not heard from, or one whose
// policies grant this node nothing of the exercise, it does not name. Another exercise's partners
// it leaves out.
func TestExerciseBannerNamesEarlierReleases(t *testing.T) {
	pages, cats := pagesAndCatalogues(t)
	list := &pb.ListExercisesResponse{Exercises: []*pb.ExerciseInfo{
		{Name: "andere", Partners: []*pb.ExercisePartner{{Peer: "ncc", State: "none"}, {Peer: "coa", State: "unknown", EarlierRelease: true}}},
		{Name: "oefening-zeeland", Partners: []*pb.ExercisePartner{
			{Peer: "lcvs", State: "none"},
			{Peer: "vr-zeeland", State: "unknown", EarlierRelease: true},
			{Peer: "politie", State: "unknown", Error: "connection refused"},
			{Peer: "ggd", State: "unknown"},
			{Peer: "ncc", State: "closed"},
			{Peer: "coa", State: "open"},
		}},
	}}
	p := &page{L: &Lang{Code: "nl", cat: cats["nl"]}, Exercise: "oefening-zeeland"}
	var names []string
	names, p.ExerciseAbsent, p.ExerciseEarlier = exerciseParts(list, p.Exercise)
	if strings.Join(names, ",") != "andere,oefening-zeeland" {
		t.Errorf("the exercises: %q", names)
	}
	var b strings.Builder
	if err := pages["admin"].ExecuteTemplate(&b, "exercisebanner", p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`<strong id="oefening-afwezig">Doet niet mee: lcvs, ncc.`,
		`<span id="oefening-eerder">Of vr-zeeland meedoen, zeggen hun knooppunten niet: die draaien een eerdere versie van Knooppunt.</span>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the banner lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"politie", "ggd", "coa"} {
		if strings.Contains(out, not) {
			t.Errorf("the banner names %s:\n%s", not, out)
		}
	}
}
