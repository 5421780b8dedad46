package ui

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/assessment"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// shownElsewhere are the kinds the picture shows in a section of their own (alerts, the shared
// assessment) or sums (shelter capacity): the latest records are all others, what people read,
// a partner's kind this node does not know included, so that no record the picture counts is
// shown nowhere on it.
var shownElsewhere = map[string]bool{record.AlertKind: true, assessment.Kind: true, assessment.ResponseKind: true}

// summedKinds are the kinds whose fields pic's sums add up.
func summedKinds(pic *pb.PictureResponse) map[string]bool {
	summed := map[string]bool{}
	for _, a := range pic.Aggregates {
		summed[a.Kind] = true
	}
	return summed
}

// latestOf returns whether an entry of pic belongs among its latest records: not a kind the
// picture shows apart (shownElsewhere) or sums, whatever this node knows of it.
func latestOf(pic *pb.PictureResponse) func(*pb.PictureEntry) bool {
	summed := summedKinds(pic)
	return func(e *pb.PictureEntry) bool {
		return e.Record != nil && !shownElsewhere[e.Kind] && !summed[e.Kind]
	}
}

// maxLatest is how many of the latest records the picture lists.
const maxLatest = 15

// severityRank orders CAP severities, the most severe highest.
var severityRank = map[string]int{"Extreme": 4, "Severe": 3, "Moderate": 2, "Minor": 1}

type pictureView struct {
	Crises []crisisView
	Crisis string
	// Refresh is how often, in seconds, an open picture is fetched again for its ages and its
	// partners' answers (assets/live-picture.js).
	Refresh int
	// Unknown is set when nothing here names the crisis asked for: the page says so, and shows
	// no picture, whose every partner would seem to answer that there is nothing.
	Unknown  bool
	Known    string
	Phase    string
	Partners []partnerView
	Partial  bool
	// Columns are the aggregated fields, such as shelter.capacity beds_free; Rows are the
	// regions, with NL (national) last.
	Columns []string
	Rows    []capacityRow
	// LeftOut are the records of aggregated kinds that the sums do not count: their source has
	// a later record under the same key (docs/api.md).
	LeftOut []leftOutView
	// Disputed are the entries of aggregated kinds that other sources report other figures of.
	Disputed []disputedView
	// DiffersElsewhere names the places (key and region) of the entries of aggregated kinds that
	// other sources report with the same figures, differing only in another field (a note, one
	// withheld from this node): the first differsShown, then how many more.
	DiffersElsewhere []string
	// Lacking says of each sum that lacks entries of its kind how many it counts (lackingSums).
	Lacking []string
	// Stale names the entries the sums count that are stale, oldest first, at most staleShown:
	// StaleMore more (review T, T2: a figure days old counted in the sums unmarked).
	Stale     []staleView
	StaleMore int
	// Charts draw each column per region, the national total left out.
	Charts []chartView
	Latest []entryView
	// LatestMore, when Latest was cut to maxLatest, is how many there were; LatestSearch the
	// search that shows them all.
	LatestMore   int
	LatestSearch string
	// Replaced counts the superseded documents left out of Latest because the document that
	// replaced them, from the same source, is in it: seven versions of one Q&A read alike.
	Replaced int
	// Shortened: an entry of Latest lacks fields the answer left out (entryView.Shortened).
	Shortened bool
	// Alerts are the alerts in force, the most severe and newest first (activeAlert); Cleared
	// those that ended within clearedShown, newest first, at most maxCleared: MoreCleared more.
	Alerts, Cleared []alertView
	MoreCleared     int
	// AlertsLink searches all alerts of the crisis, in the page's mode.
	AlertsLink string
	Empty      bool
	// Assessment is the current assessment of the crisis next to the picture.
	Assessment *assessmentPart
	// Live is the address of the picture's stream of changes (see live.go), "" without one;
	// Digest sums up what the page shows, for the stream to compare with.
	Live, Digest string
	// Marking is the highest classification of the records the picture holds, "" when it
	// holds none; At is when the page was made. A printed picture carries both.
	Marking, At string
	// CSV is the address of the capacity table as a CSV file (pictureCSV).
	CSV string
	// Behind are the partners whose shared records this node is still taking in (CatchingUp).
	Behind []string
	// NoLeader: this replica is cut off from its group, and the picture does not change.
	NoLeader bool
	// Unanswered says, partner by partner, who did not answer and how old its copy is.
	Unanswered []string
}

// assessmentPart is what the assessment partial (part-assessment.html) shows: each
// organisation's current assessment (the node's own first, then the latest written), whether the
// picture changed since it was written, and who endorsed it.
type assessmentPart struct {
	L *Lang
	A *assessmentView
	// Others are the other organisations' assessments.
	Others []*assessmentView
	// Publish, for a writer whose organisation has no assessment of the crisis here, is the form
	// that publishes its first.
	Publish string
}

// assessmentItem is one assessment as the partial shows it; N sets its elements' ids apart from
// the first's ("" for the first).
type assessmentItem struct {
	L *Lang
	A *assessmentView
	N string
}

// Each is every assessment of the part, the first first.
func (p *assessmentPart) Each() []assessmentItem {
	if p.A == nil {
		return nil
	}
	out := []assessmentItem{{L: p.L, A: p.A}}
	for i, a := range p.Others {
		out = append(out, assessmentItem{L: p.L, A: a, N: fmt.Sprintf("-%d", i+2)})
	}
	return out
}

type assessmentView struct {
	Origin                    string
	Version                   int64
	Written                   string
	Text, Development, Advice string
	Changed, Exact            bool
	ChangedSources            []string
	TakenOver                 []string // per slot: a source's newer record now in the place of another's
	CannotTell                []string
	NotReceived               []string // sources of its picture this node receives nothing of, with their entries
	SumsMoved                 []string // per sum that moved since: the sum, its region, old → new (sumsMoved)
	SumsKept, Minor           bool     // the assessment kept its sums; the picture changed, and none moved
	Endorsed                  []string
	Remarks                   []assessment.Response
	// Actions are the forms the section offers a writer (assessment_form.go).
	Actions assessmentActions
}

// assessmentOf finds each organisation's current assessment in the picture and compares it with
// the picture; behind names the partners whose copy here may be behind (search.Behind). The
// organisations in it go by name, the names this node knows them by (a trust domain otherwise).
func (s *Server) assessmentOf(r *request, pic *pb.PictureResponse, behind []string, name func(td string) string) *assessmentPart {
	part := &assessmentPart{L: r.L}
	all, err := assessment.All(pic, s.c.Org, behind)
	if isWriter(r) && (len(all) == 0 || all[0].Origin != s.c.Org) {
		part.Publish = r.inMode("/duiding?" + url.Values{"crisis": {pic.Crisis}}.Encode())
	}
	if err != nil || len(all) == 0 {
		return part
	}
	for i, v := range all {
		a := assessmentViewOf(r, v, name)
		a.Actions = s.assessmentActionsOf(r, pic.Crisis, v)
		if i == 0 {
			part.A = a
		} else {
			part.Others = append(part.Others, a)
		}
	}
	return part
}

// assessmentViewOf is an assessment as the partial shows it.
func assessmentViewOf(r *request, v *assessment.View, name func(td string) string) *assessmentView {
	a := &assessmentView{Origin: name(v.Origin), Version: v.Version, Written: age(r.L, int64(time.Since(v.WrittenAt).Seconds())),
		Text: v.Body.Text, Development: v.Body.Development, Advice: v.Body.Advice,
		Changed: v.Changed, Exact: v.Exact, Remarks: slices.Clone(v.Remarks), SumsMoved: sumsMoved(r.L, v), SumsKept: v.SumsKept, Minor: v.Minor}
	for _, src := range v.ChangedSources {
		a.ChangedSources = append(a.ChangedSources, name(src))
	}
	for _, t := range v.TakenOver {
		var over []string
		for _, src := range t.Over {
			over = append(over, name(src))
		}
		a.TakenOver = append(a.TakenOver, r.L.T("assessment.taken_over", t.Key, r.L.Kind(t.Kind), t.Region, name(t.Source), strings.Join(over, ", ")))
	}
	for _, src := range v.CannotTell {
		a.CannotTell = append(a.CannotTell, name(src))
	}
	for _, c := range v.NotReceived {
		a.NotReceived = append(a.NotReceived, r.L.T("assessment.not_received_source", name(c.Source), c.Entries))
	}
	for i := range a.Remarks {
		a.Remarks[i].Org = name(a.Remarks[i].Org)
	}
	for _, e := range v.Endorsed {
		name := name(e.Org)
		if e.Outdated {
			name += " (" + r.L.T("assessment.endorsed_version", e.Version) + ")"
		}
		a.Endorsed = append(a.Endorsed, name)
	}
	return a
}

type crisisView struct {
	Name, Phase string
	Current     bool
}

// cacheAge says, of a peer that did not answer a search or refused it (it removed this node),
// how old the copy is that is shown in its place: its age, or, while this node's subscription to
// it is open, that it was current when the feed last delivered or sent a heartbeat, and when that
// was; "" for a peer that answered, or of which there is no copy.
func cacheAge(l *Lang, p *pb.PeerStatus) string {
	switch {
	case p.State == "answered":
		return ""
	case p.FeedOpen:
		return l.T("picture.cache_heard", age(l, p.CacheAgeMs/1000))
	case p.CacheAgeMs > 0:
		// Complete until then: a copy just taken reads as fresh figures without its time
		// (review T, T10).
		return l.T("picture.copy_until", copyClock(p), age(l, p.CacheAgeMs/1000))
	}
	return ""
}

// copyClock is the time until which the copy of a partner that did not answer was complete.
func copyClock(p *pb.PeerStatus) string {
	return local(time.Now().Add(-time.Duration(p.CacheAgeMs) * time.Millisecond)).Format("15:04")
}

type partnerView struct {
	Name, TrustDomain string
	// State is answered, denied, unreachable, busy or timed_out (shownState); Own marks this
	// node.
	State   string
	Own     bool
	Records int
	// Newest is the age of the partner's newest record on the picture.
	Newest   string
	CacheAge string
	// CatchingUp, on the picture, is since when this node has been taking in what the partner
	// shares without having reached the end of it: the picture lacks part of it.
	CatchingUp string
	// Only, on the search page, is the same search at this partner alone.
	Only string
}

type capacityRow struct {
	Region   string
	National bool
	Cells    []string
	// Counts, beside each cell, says how many of the region's entries of its kind the sum
	// counts ("4 of 7") when it lacks some; "" when it counts them all.
	Counts []string
	// Link searches the records a region's sums are made of: the figures per municipality.
	Link string
	// Stale says how many of the entries the region's sums count are stale ("2 verouderd"),
	// "" for none.
	Stale string
}

// staleView is an entry the sums count although it is stale: who reports it, and how old.
type staleView struct {
	Key, Region, Source, Age, Link string
}

// staleShown bounds the stale entries the picture names under its sums, oldest first.
const staleShown = 10

type entryView struct {
	Kind, Region, Key, Title, Source, Age string
	Stale                                 bool
	Conflict                              []string
	Link                                  string
	// Validity marks a superseded, expired or not yet valid document (record.Validity).
	Validity string
	Updated  time.Time
	// Files says that the record comes with files (filesTag); empty when it names none.
	Files string
	// Secret is the classification of a confidential or secret record, in the page's
	// language, so that it stands out in the list; empty for the rest.
	Secret string
	// Shortened names, by their labels, the body fields whose values the picture's answer left
	// out to stay within its bound (fields_left_out); the record's page shows them whole.
	Shortened string
	// Disagree says what each source in Conflict reports instead.
	Disagree []disagreeView
}

// disagreeView is what a source that disagrees with an entry reports instead (the entry's
// disagreeing record of it): Figures, by their labels, updated Age ago, at At; with a Link to
// the record. Figures is empty when the picture's answer left the record out to stay within its
// bound.
type disagreeView struct {
	Source, Figures, Age, Link string
	At                         time.Time
}

// disputedView is an entry of a summed kind that other sources report otherwise: the record the
// sums count, and what the others report.
type disputedView struct {
	Key, Region, Source, Figures, Link string
	Others                             []disagreeView
}

// picture is "Het beeld": one crisis's phase, who answered, capacity per region and the latest
// records.
func (s *Server) picture(w http.ResponseWriter, r *request) {
	ctx := r.ctx()
	v := &pictureView{}
	// Every crisis there is something to see of: those with a phase set here, and those that own
	// records or partners' records name, phase set or not.
	phases, err := pb.NewPhaseServiceClient(s.c.Conn).List(ctx, &pb.ListPhasesRequest{Known: true})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	if ex := r.exercise(); ex != "" {
		// An exercise's crises are those it set a phase for, and the actual ones by name: its
		// phases are its own.
		own, err := pb.NewPhaseServiceClient(s.c.Conn).List(ctx, &pb.ListPhasesRequest{Exercise: ex, Known: true})
		if err != nil {
			s.failCall(w, r, err)
			return
		}
		byCrisis := map[string]*pb.PhaseInfo{}
		for _, p := range phases.Phases {
			byCrisis[p.Crisis] = &pb.PhaseInfo{Crisis: p.Crisis, Phase: "cold"}
		}
		for _, p := range own.Phases {
			byCrisis[p.Crisis] = p
		}
		phases.Phases = phases.Phases[:0]
		for _, p := range byCrisis {
			phases.Phases = append(phases.Phases, p)
		}
		sort.Slice(phases.Phases, func(i, j int) bool { return phases.Phases[i].Crisis < phases.Phases[j].Crisis })
	}
	v.Crisis = strings.TrimSpace(r.URL.Query().Get("crisis"))
	for _, p := range phases.Phases {
		if v.Crisis == "" {
			v.Crisis = p.Crisis
		}
		v.Crises = append(v.Crises, crisisView{Name: p.Crisis, Phase: p.Phase})
	}
	if v.Crisis == "" {
		v.Empty = true
		s.render(w, r.Request, http.StatusOK, "picture", s.newPage(r, "picture", r.L.T("picture.title"), v))
		return
	}
	if !slices.ContainsFunc(v.Crises, func(c crisisView) bool { return c.Name == v.Crisis }) {
		names := make([]string, len(v.Crises))
		for i, c := range v.Crises {
			names[i] = c.Name
		}
		// Oekraïne or Oekraine for oekraine: the crisis as people write it goes to the one
		// the records name.
		if name, ok := crisisNamed(names, v.Crisis); ok {
			q := r.URL.Query()
			q.Set("crisis", name)
			http.Redirect(w, r.Request, "/?"+q.Encode(), http.StatusSeeOther)
			return
		}
		v.Unknown, v.Known = true, cmp.Or(strings.Join(names, ", "), r.L.T("picture.known_none"))
		s.render(w, r.Request, http.StatusOK, "picture", s.newPage(r, "picture", r.L.T("picture.heading", v.Crisis), v))
		return
	}
	for i := range v.Crises {
		v.Crises[i].Current = v.Crises[i].Name == v.Crisis
	}
	// The picture says which partners answered just now, and since when one that did not is
	// served from the cache.
	pic, partners, ok := s.pictureOf(w, r, v.Crisis)
	if !ok {
		return
	}
	v.Phase = pic.Phase
	v.Marking, v.At = pictureMarking(r.L, pic), local(time.Now()).Format("2006-01-02 15:04 MST")
	q := r.modeValues(url.Values{"crisis": {v.Crisis}}) // the stream and the download read the picture in the page's mode
	v.CSV = "/beeld/csv?" + q.Encode()
	if s.c.Changed != nil {
		v.Live, v.Digest, v.Refresh = "/beeld/live?"+q.Encode(), pictureDigest(pic), pictureRefresh
		if s.c.PartnersChanged != nil {
			// What the page shows of the partners: its stream tells of a change since at once.
			v.Live += "&partners=" + strconv.FormatUint(partners, 10)
		}
	}
	v.Partial, v.NoLeader = pic.Partial, pic.NoLeader
	newest := map[string]int64{}
	count := map[string]int{}
	for _, e := range pic.Entries {
		count[e.Source]++
		if a, ok := newest[e.Source]; !ok || e.AgeS < a {
			newest[e.Source] = e.AgeS
		}
	}
	own := partnerView{Name: s.c.Name, TrustDomain: s.c.Org, State: "answered", Own: true, Records: count[s.c.Org]}
	if a, ok := newest[s.c.Org]; ok {
		own.Newest = age(r.L, a)
	}
	v.Partners = append(v.Partners, own)
	names := s.partnerNames(r)
	for _, p := range pic.Peers {
		pv := partnerView{Name: partnerName(names, p.Peer, p.TrustDomain), TrustDomain: p.TrustDomain, State: shownState(p), Records: count[p.TrustDomain]}
		if a, ok := newest[p.TrustDomain]; ok {
			pv.Newest = age(r.L, a)
		}
		pv.CacheAge = cacheAge(r.L, p)
		if p.CatchingUpSince != nil {
			pv.CatchingUp = local(p.CatchingUpSince.AsTime()).Format("15:04")
			v.Behind = append(v.Behind, pv.Name)
		}
		if line := unanswered(r.L, p, pv); line != "" {
			v.Unanswered = append(v.Unanswered, line)
		}
		v.Partners = append(v.Partners, pv)
	}
	v.Assessment = s.assessmentOf(r, pic, search.Behind(pic.Peers), func(td string) string { return s.orgName(v.Partners, td) })

	v.Columns, v.Rows = capacity(r.L, s.c.Kinds, pic)
	v.Lacking = lackingSums(r.L, pic)
	now := time.Now()
	// The entries of a kind the sums count are shown only in them: the ones that other sources
	// report otherwise are said under the sums, each with what every source reports.
	summed := summedKinds(pic)
	for _, e := range pic.Entries {
		if !summed[e.Kind] || len(e.Conflict) == 0 || e.Record == nil {
			continue
		}
		if !e.FiguresDisagree {
			// The same figures, differing elsewhere, or in a figure one of them lacks: said apart,
			// as no source reports another value (review I, F3). A sum then counts the latest's.
			v.DiffersElsewhere = append(v.DiffersElsewhere, e.Key+" ("+r.L.Region(e.Region)+")")
			continue
		}
		d := disputedView{Key: e.Key, Region: e.Region, Source: s.orgName(v.Partners, e.Source), Figures: s.figures(r.L, e.Kind, e.Record.Body),
			Link: withBack(recordLink(e.Record), r.URL.RequestURI()), Others: s.disagreeing(r, e, now)}
		for i := range d.Others {
			d.Others[i].Source = s.orgName(v.Partners, d.Others[i].Source)
		}
		v.Disputed = append(v.Disputed, d)
	}
	v.Stale, v.StaleMore = s.staleFigures(r, pic, v.Rows, func(td string) string { return s.orgName(v.Partners, td) })
	if n := len(v.DiffersElsewhere); n > differsShown {
		v.DiffersElsewhere = append(v.DiffersElsewhere[:differsShown], r.L.T("picture.differs_more", n-differsShown))
	}
	// The records the sums leave out because their source has a later one under the same key:
	// said under the sums, each linked, so that a location that vanished can be found.
	for _, e := range pic.Entries {
		if k := s.c.Kinds.Get(e.Kind); len(e.LeftOut) == 0 || k == nil || len(k.Aggregate) == 0 {
			continue
		}
		for _, ref := range e.LeftOut {
			origin, id, _ := strings.Cut(ref, "/")
			link := recordLink(&pb.Record{Origin: origin, Id: id, Exercise: r.exercise()})
			v.LeftOut = append(v.LeftOut, leftOutView{ID: id, Key: e.Key, Source: s.orgName(v.Partners, origin), Counted: e.Record.GetId(), Link: withBack(link, r.URL.RequestURI())})
		}
	}
	// Each region's row leads to its records, municipality by municipality: the kind when the
	// sums are of one kind, as they are of shelter.capacity.
	for i, row := range v.Rows {
		if row.National {
			continue
		}
		q := url.Values{"crisis": {v.Crisis}, "region": {row.Region}}
		if len(summed) == 1 {
			for k := range summed {
				q.Set("kind", k)
			}
		}
		v.Rows[i].Link = "/zoeken?" + r.modeValues(q).Encode()
	}
	for i, c := range v.Columns {
		v.Charts = append(v.Charts, newChart(fmt.Sprintf("grafiek-%d", i), c, v.Rows, i, r.L.Region))
	}

	latest := latestOf(pic)
	shown := map[string]bool{} // origin and id of each entry the list can show
	for _, e := range pic.Entries {
		if latest(e) && e.Record != nil {
			shown[e.Record.Origin+"\x00"+e.Record.Id] = true
		}
	}
	for _, e := range pic.Entries {
		if a, inForce, ended := activeAlert(r.L, e, now, r.URL.RequestURI()); inForce {
			v.Alerts = append(v.Alerts, a)
		} else if ended {
			v.Cleared = append(v.Cleared, a)
		}
		if !latest(e) {
			continue
		}
		if e.Validity == record.Superseded && shown[e.Record.GetOrigin()+"\x00"+supersededBy(e.Record.GetBody())] {
			v.Replaced++
			continue
		}
		v.Latest = append(v.Latest, s.entry(r, e))
	}
	sort.SliceStable(v.Alerts, func(i, j int) bool {
		if a, b := severityRank[v.Alerts[i].Severity], severityRank[v.Alerts[j].Severity]; a != b {
			return a > b
		}
		return v.Alerts[i].at.After(v.Alerts[j].at)
	})
	sort.SliceStable(v.Cleared, func(i, j int) bool { return v.Cleared[i].at.After(v.Cleared[j].at) })
	if len(v.Cleared) > maxCleared {
		v.Cleared, v.MoreCleared = v.Cleared[:maxCleared], len(v.Cleared)-maxCleared
		v.AlertsLink = "/zoeken?" + r.modeValues(url.Values{"kind": {record.AlertKind}, "crisis": {pic.Crisis}}).Encode()
	}
	for _, list := range [][]alertView{v.Alerts, v.Cleared} {
		for i := range list {
			list[i].Source = s.orgName(v.Partners, list[i].Source)
		}
	}
	// Documents in force first, newest first: a superseded or expired Q&A never pushes a current
	// sitrep past the cut below.
	sort.SliceStable(v.Latest, func(i, j int) bool {
		if a, b := v.Latest[i].Validity == "", v.Latest[j].Validity == ""; a != b {
			return a
		}
		return v.Latest[i].Updated.After(v.Latest[j].Updated)
	})
	if len(v.Latest) > maxLatest {
		// The rest is a search away: the page says so, and links to it.
		v.LatestMore = len(v.Latest)
		v.Latest = v.Latest[:maxLatest]
		v.LatestSearch = "/zoeken?" + r.modeValues(url.Values{"crisis": {v.Crisis}}).Encode()
	}
	for i := range v.Latest {
		v.Shortened = v.Shortened || v.Latest[i].Shortened != ""
		v.Latest[i].Source = s.orgName(v.Partners, v.Latest[i].Source)
		for j, td := range v.Latest[i].Conflict {
			v.Latest[i].Conflict[j] = s.orgName(v.Partners, td)
		}
		for j := range v.Latest[i].Disagree {
			v.Latest[i].Disagree[j].Source = s.orgName(v.Partners, v.Latest[i].Disagree[j].Source)
		}
	}
	s.render(w, r.Request, http.StatusOK, "picture", s.newPage(r, "picture", r.L.T("picture.heading", v.Crisis), v))
}

// supersededBy is the id a document's body names as its successor, "" for none.
func supersededBy(body []byte) string {
	var b struct {
		SupersededBy string `json:"superseded_by"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.SupersededBy
}

func (v *pictureView) printMarking() string { return v.Marking }
func (v *searchView) printMarking() string  { return v.Marking }
func (v *recordView) printMarking() string  { return v.Classification }

// capacity is the picture's sums as a table: a column per aggregated kind and field, by its
// label, in the order the kinds declare their aggregable fields, and a row per region, the
// national total (NL) last.
func capacity(l *Lang, kinds *record.Kinds, pic *pb.PictureResponse) (columns []string, rows []capacityRow) {
	type column struct{ kind, field, label string }
	var cols []column
	seen := map[string]bool{}
	cells := map[string]map[string]string{}
	counts := map[string]map[string]string{} // of a sum that lacks entries: 4 of 7
	for _, a := range pic.Aggregates {
		// A field the catalogue knows gets its label; a field of a kind declared in config
		// shows as kind · field.
		col := aggLabel(l, a.Kind, a.Field, a.Kind+" · "+a.Field)
		if !seen[col] {
			seen[col] = true
			cols = append(cols, column{a.Kind, a.Field, col})
		}
		if cells[a.Region] == nil {
			cells[a.Region], counts[a.Region] = map[string]string{}, map[string]string{}
		}
		cells[a.Region][col] = strconv.FormatFloat(a.Sum, 'f', -1, 64)
		if a.Records < a.Entries {
			counts[a.Region][col] = l.T("picture.sum_of", a.Records, a.Entries)
		}
	}
	// The columns in the order the kinds declare their aggregable fields, whatever the
	// language: a CSV file has the same columns in Dutch and in English.
	order := func(c column) int {
		if k := kinds.Get(c.kind); k != nil {
			if i := slices.Index(k.Aggregate, c.field); i >= 0 {
				return i
			}
		}
		return math.MaxInt // a field the node does not know of: after those it does, by name
	}
	slices.SortStableFunc(cols, func(a, b column) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(order(a), order(b)), cmp.Compare(a.field, b.field))
	})
	for _, c := range cols {
		columns = append(columns, c.label)
	}
	regions := make([]string, 0, len(cells))
	for reg := range cells {
		if reg != "NL" {
			regions = append(regions, reg)
		}
	}
	sort.Strings(regions)
	if _, ok := cells["NL"]; ok {
		regions = append(regions, "NL")
	}
	for _, reg := range regions {
		row := capacityRow{Region: reg, National: reg == "NL"}
		for _, c := range columns {
			row.Cells = append(row.Cells, cells[reg][c])
			row.Counts = append(row.Counts, counts[reg][c])
		}
		rows = append(rows, row)
	}
	return columns, rows
}

// staleFigures marks the rows of the sums that count stale entries with how many, and names
// those entries, oldest first: at most staleShown, and how many more. The sums count a stale
// figure as any other (docs/api.md); the page must not let it pass for current.
func (s *Server) staleFigures(r *request, pic *pb.PictureResponse, rows []capacityRow, orgName func(string) string) (list []staleView, more int) {
	summed := summedKinds(pic)
	var stale []*pb.PictureEntry
	byRegion := map[string]int{}
	for _, e := range pic.Entries {
		if e.Stale && summed[e.Kind] && e.Record != nil && !e.Record.Tombstone {
			stale = append(stale, e)
			byRegion[e.Region]++
			if e.Region != "NL" {
				byRegion["NL"]++ // the national row counts every region's, and its own (review U, U7)
			}
		}
	}
	for i := range rows {
		if n := byRegion[rows[i].Region]; n > 0 {
			rows[i].Stale = r.L.T("picture.stale_count", n)
		}
	}
	sort.SliceStable(stale, func(i, j int) bool { return stale[i].AgeS > stale[j].AgeS })
	for i, e := range stale {
		if i == staleShown {
			return list, len(stale) - staleShown
		}
		list = append(list, staleView{Key: e.Key, Region: e.Region, Source: orgName(e.Source), Age: age(r.L, e.AgeS),
			Link: withBack(recordLink(e.Record), r.URL.RequestURI())})
	}
	return list, 0
}

// pictureMarking is the highest classification of the picture's records (marking).
func pictureMarking(l *Lang, pic *pb.PictureResponse) string {
	shown := make([]*pb.Record, len(pic.Entries))
	for i, e := range pic.Entries {
		shown[i] = e.Record
	}
	return marking(l, shown)
}

// marking is the highest classification of records, in l's words, "" when there are none: what
// a printout of a page that shows them must be handled as.
func marking(l *Lang, records []*pb.Record) string {
	most := pb.Classification_CLASSIFICATION_UNSPECIFIED
	for _, r := range records {
		most = max(most, r.GetClassification())
	}
	if most == pb.Classification_CLASSIFICATION_UNSPECIFIED {
		return ""
	}
	return l.Class(most)
}

// chartView is a bar chart of one column of the capacity table, drawn as SVG on the server: no
// script, and the table beside it says the same for those who cannot see it.
type chartView struct {
	ID, Title string
	// Height is the SVG's height in its own units; each bar takes chartRow.
	Height int
	Bars   []barView
	// The box's width, where the bars start, their full length and where the values start, in
	// the SVG's units: the constants below, for the template.
	Width, BarX, Length, ValueX int
	// The narrow drawing, for a phone or a page zoomed to 400 %: each name on a line of its own
	// with its value at the end, the bar under it across the box.
	NarrowWidth, NarrowHeight int
}

type barView struct {
	// Label names the region as the table does (Lang.Region).
	Label, Value string
	// Y is the bar's top, Width its length, in the SVG's units.
	Y, Width float64
	TextY    float64
	// The same in the narrow drawing: the line of the name and value, and the bar's top and
	// length.
	NarrowTextY, NarrowY, NarrowBar float64
}

// The chart's geometry, in SVG units: a chartWidth-wide box with the regions' names on the left,
// then the bars, then their values. chartLabel holds the longest name, "VR06 Noord- en
// Oost-Gelderland", in the labels' 14 units of a usual sans-serif font. The style draws the box
// at most chartWidth CSS pixels wide, and two charts side by side only where each gets about
// that, so the names stay legible. Narrower than that the style draws the narrow drawing, of
// narrowWidth units a row of narrowRow, at most its own width: at 320 CSS pixels the names are
// still some 12 pixels high, where the wide drawing's would be 6.
const (
	chartRow    = 28
	chartLabel  = 232
	chartLength = 260
	chartValue  = chartLabel + chartLength + 8
	chartWidth  = 576
	narrowRow   = 42
	narrowWidth = 280
)

// newChart draws column col of rows, leaving out the national total; name says a region's
// code in words.
func newChart(id, title string, rows []capacityRow, col int, name func(region string) string) chartView {
	c := chartView{ID: id, Title: title, Width: chartWidth, BarX: chartLabel, Length: chartLength, ValueX: chartValue, NarrowWidth: narrowWidth}
	var most float64
	values := make([]float64, len(rows))
	for i, r := range rows {
		if r.National {
			continue
		}
		values[i], _ = strconv.ParseFloat(r.Cells[col], 64)
		most = max(most, values[i])
	}
	for i, r := range rows {
		if r.National {
			continue
		}
		b := barView{Label: name(r.Region), Value: r.Cells[col], Y: float64(len(c.Bars)*chartRow + 4)}
		b.TextY = b.Y + 15
		b.NarrowTextY = float64(len(c.Bars)*narrowRow + 16)
		b.NarrowY = b.NarrowTextY + 6
		if most > 0 && values[i] > 0 {
			b.Width = max(1, values[i]/most*chartLength)
			b.NarrowBar = max(1, values[i]/most*narrowWidth)
		}
		c.Bars = append(c.Bars, b)
	}
	c.Height = len(c.Bars)*chartRow + 8
	c.NarrowHeight = len(c.Bars)*narrowRow + 4
	return c
}

// leftOutView is a record the picture's sums leave out, and the record of its source they count.
type leftOutView struct {
	ID, Key, Source, Counted, Link string
}

func (s *Server) entry(r *request, e *pb.PictureEntry) entryView {
	rec := e.Record
	ev := entryView{Kind: e.Kind, Region: e.Region, Key: e.Key, Source: e.Source, Age: age(r.L, e.AgeS), Stale: e.Stale, Conflict: e.Conflict, Validity: e.Validity,
		Title: titleOf(r.L, rec), Link: withBack(recordLink(rec), r.URL.RequestURI()), Updated: rec.GetUpdatedAt().AsTime(), Files: filesTag(r.L, rec.Body)}
	if ev.Title == "" {
		ev.Title = untitled(r.L, rec, s.orgNamer(r))
	}
	if rec.GetClassification() >= pb.Classification_CONFIDENTIAL {
		ev.Secret = r.L.Class(rec.Classification)
	}
	if len(e.FieldsLeftOut) > 0 {
		label := fieldLabeler(r.L, s.c.Kinds.Get(e.Kind))
		names := make([]string, len(e.FieldsLeftOut))
		for i, f := range e.FieldsLeftOut {
			names[i] = label(f)
		}
		ev.Shortened = strings.Join(names, ", ")
	}
	ev.Disagree = s.disagreeing(r, e, time.Now())
	return ev
}

// disagreeing is, for each source in e's conflict, what it reports instead, by its trust domain;
// without figures, when the picture's answer left its record out.
func (s *Server) disagreeing(r *request, e *pb.PictureEntry, now time.Time) []disagreeView {
	var out []disagreeView
	for _, rec := range e.Disagreeing {
		at := rec.GetUpdatedAt().AsTime()
		out = append(out, disagreeView{Source: rec.Origin, Figures: s.figures(r.L, e.Kind, rec.Body), Age: age(r.L, int64(max(now.Sub(at), 0)/time.Second)),
			At: at, Link: withBack(recordLink(rec), r.URL.RequestURI())})
	}
	if len(e.Disagreeing) == 0 {
		for _, src := range e.Conflict {
			out = append(out, disagreeView{Source: src})
		}
	}
	return out
}

// figures is a body in a few words, by its fields' labels: the fields its kind sums
// ("Vrije opvangplaatsen 1, Opvangplaatsen totaal 40"); for a kind that sums none, or a body with
// none of them, its title and its first other numbers and short texts.
func (s *Server) figures(l *Lang, kind string, body []byte) string {
	k := s.c.Kinds.Get(kind)
	label := fieldLabeler(l, k)
	var parts []string
	if k != nil {
		for _, f := range k.Aggregate {
			if v := gjson.GetBytes(body, gjson.Escape(f)); v.Type == gjson.Number {
				parts = append(parts, aggLabel(l, kind, f, label(f))+" "+l.Number(v.Num))
			}
		}
	}
	if len(parts) > 0 {
		return strings.Join(parts, ", ")
	}
	title := record.Title(body)
	if title != "" {
		parts = append(parts, title)
	}
	gjson.ParseBytes(body).ForEach(func(key, v gjson.Result) bool {
		switch {
		case key.Str == "municipality" || v.Type == gjson.String && v.Str == title:
		case v.Type == gjson.Number:
			parts = append(parts, label(key.Str)+" "+l.Number(v.Num))
		case v.Type == gjson.String && v.Str != "" && len(v.Str) <= 40:
			parts = append(parts, label(key.Str)+" "+v.Str)
		}
		return len(parts) < 4
	})
	return record.OneLine(strings.Join(parts, ", "))
}

// filesTag says, for lists, that a body names files ("met bijlage", "2 bijlagen"): a guidance
// document with its PDF is marked so. Empty for a body that names none, or a list that does not
// read as one.
func filesTag(l *Lang, body []byte) string {
	switch files, _ := record.Attachments(body); len(files) {
	case 0:
		return ""
	case 1:
		return l.T("files.one")
	default:
		return l.T("files.many", len(files))
	}
}

func recordLink(rec *pb.Record) string {
	q := url.Values{"origin": {rec.Origin}, "id": {rec.Id}}
	if rec.Exercise != "" {
		q.Set("exercise", rec.Exercise)
	}
	return "/record?" + q.Encode()
}

// withBack is a record's link that comes back to the page it was followed from (a search with
// its words and filters, the picture of a crisis): the record page's way back.
func withBack(link, back string) string {
	return link + "&" + url.Values{"terug": {back}}.Encode()
}

// age says how old something of s seconds is, in the largest whole unit; under a minute is
// "just now".
func age(l *Lang, s int64) string {
	switch {
	case s < 60:
		return l.T("age.now")
	case s < 3600:
		return l.T("age.minutes", s/60)
	case s < 48*3600:
		return l.T("age.hours", s/3600)
	default:
		return l.T("age.days", s/86400)
	}
}

type searchView struct {
	Kinds                []string
	Regions              []string
	Kind, Crisis, Region string
	// Text is the words typed into the search box; TextError says why they cannot be searched
	// for, Ignored which of them were left out (too short, or no letters or digits), LeftOut
	// which a question of more words than a search takes was searched without.
	Text, TextError, Ignored, LeftOut string
	// Frame names the words that frame a question (wat, moet), which were not searched for;
	// AnyWords says that no record holds all the words, and the hits hold one or more of them.
	Frame, AnyWords string
	// SearchedFor, when a long question was cut, is what was searched for instead of Text.
	SearchedFor string
	// Suggest is the same search with a misspelt word corrected, which finds records here
	// (search.SuggestTrailer); SuggestLink searches with it.
	Suggest, SuggestLink string
	// SuggestParts are Suggest's words and phrases, Match marking each the correction changed.
	SuggestParts []snippetPart
	// Synonym and SynonymLink offer the search with a word that nothing held replaced by the
	// word crisis records use for it (tuberculose: tbc), from search.synonyms in the page's
	// language (review P, P10).
	Synonym, SynonymLink string
	// RegionName and RegionLink offer the search in a region whose name was typed as a word
	// (Zeeland): the figures of a region's municipalities do not say its name.
	RegionName, RegionLink string
	// KindName and KindLink offer the search of a kind of figures whose words were typed
	// (vrije opvangplaatsen Zeist): records hold the figures, not the words that label them.
	KindName, KindLink string
	// OrgName and OrgLink offer the search of one organisation's records whose name was typed
	// as a word (ncc): records do not say their source's name.
	OrgName, OrgLink string
	// Org filters on the records' origin: this org, or one peer's trust domain. OrgError says
	// it is neither.
	Org, OrgError string
	Orgs          []orgChoice
	// Crises are the crises known here (a phase set, or records naming them), offered as the
	// crisis is typed; CrisisError says the typed one is no crisis name and none known is meant,
	// CrisisUnknown that no record here names it (a partner's may).
	Crises        []string
	CrisisError   string
	CrisisUnknown bool
	// CrisisSuggest is the known crisis one or two edits from the one typed (oekriane), which
	// CrisisSuggestLink searches in (review P, P12).
	CrisisSuggest, CrisisSuggestLink string
	Searched                         bool
	Hits                             []hitView
	Partners                         []partnerView
	Partial                          bool
	// Unanswered names the partners that did not answer, each with how old the copy of theirs
	// is that stands in for them (review P, P4); Cached says that a hit is from such a copy.
	Unanswered []string
	Cached     bool
	// Capped says which sources gave searchPageLimit results, and may hold more.
	Capped string
	// Marking is the highest classification of the hits, At when the search ran: a printout
	// of the results carries both.
	Marking, At string
	// TextPending is how many writes the full-text index had yet to take in.
	TextPending int64
	// None says that nothing was found, and what to try next: about the words, and about the
	// filters only when one is set.
	None string
}

// noneText is what the search page says when it found nothing.
func (v *searchView) noneText(l *Lang) string {
	filtered := v.Kind != "" || v.Region != "" || v.Crisis != "" || v.Org != ""
	text := cmp.Or(v.SearchedFor, v.Text) // the words searched for, not the question they came from
	switch {
	case text != "" && filtered:
		return l.T("search.none_words_filtered", text)
	case text != "":
		return l.T("search.none_words", text)
	}
	return l.T("search.none")
}

type hitView struct {
	Kind, Crisis, Region, Title, Origin, Classification, Age, Link string
	// Updated is when the record was written: paper shows it beside its age (Age), which only
	// holds at the moment the page was made.
	Updated   time.Time
	FromCache bool
	Redacted  int
	// Validity marks a superseded, expired or not yet valid document (record.Validity).
	Validity string
	// Policies are the source's policies that granted the record, Purpose what this node
	// stated it needed it for, Received when the cache took it: empty for own records.
	Policies, Purpose, Received string
	// Figures are the record's numbers that its kind sums in the picture (beds free and in
	// total), so that a figure is read in the list without opening the record.
	Figures []figureView
	// Files says that the record comes with files (filesTag); empty when it names none.
	Files string
	// Snippet, for a search on words, is where the record matched, its matches marked;
	// TitleMarked the title with its matches marked, when they are all in the title.
	Snippet, TitleMarked []snippetPart
	// SnippetFile is the file the snippet is from, when its words are in an attachment and not
	// in the record's text; SnippetLink downloads it, as on the record page.
	SnippetFile, SnippetLink string
	// Answer is the start of a Q&A's answer, when nothing else is shown under its question:
	// what the person came for, without a click.
	Answer string
	// Stale marks figures older than their kind's stale_after; Others names the sources whose
	// record among the hits reports other figures of the same place, and Newest marks the newest
	// of them, the one the picture counts when it is the newest it holds (figureMarks).
	Stale  bool
	Others []string
	Newest bool
	// OtherLink, beside Others, opens the record among the hits that reports other figures of
	// the place: of the newest, the first of the others (review R, R10).
	OtherLink string
}

// figureMarks marks the hits of kinds that sum figures as the picture of their crisis would
// (search.Merge, over the hits alone): stale ones, and, where two sources' records of the same
// place report other figures, each with the other sources and the newest (review P, P3: search
// showed 0 and 8 free beds of one place, unmarked), linked to the other record. Such records
// stand together in views, at the place of the first of them, the newest first (review R, R10:
// they were results 3 and 14 of 14).
func (s *Server) figureMarks(hits []*pb.SearchHit, views []hitView, now time.Time) {
	others := map[int][]int{} // the disagreeing hits of each newest
	defer func() { together(views, others) }()
	aggregable := map[string][]string{}
	for _, k := range s.c.Kinds.Names() {
		if a := s.c.Kinds.Get(k).Aggregate; len(a) > 0 {
			aggregable[k] = a
		}
	}
	byCrisis := map[string][]search.Item{}
	at := map[string]int{} // hit index by origin, id and mode
	key := func(r *pb.Record) string { return r.GetOrigin() + "\x00" + r.GetId() + "\x00" + r.GetExercise() }
	for i, h := range hits {
		if len(aggregable[h.Record.GetKind()]) == 0 || h.Record.GetTombstone() {
			continue
		}
		it := search.Item{Record: h.Record, Source: h.Record.GetOrigin()}
		if h.ReceivedAt != nil {
			it.ReceivedAt = h.ReceivedAt.AsTime()
		}
		byCrisis[h.Record.GetCrisis()] = append(byCrisis[h.Record.GetCrisis()], it)
		at[key(h.Record)] = i
	}
	limit := func(kind string) time.Duration { return s.c.Kinds.Get(kind).StaleLimit() }
	for _, items := range byCrisis {
		for _, e := range search.Merge(items, aggregable, now, limit).Entries {
			i, ok := at[key(e.Record)]
			if !ok {
				continue
			}
			views[i].Stale = e.Stale
			if len(e.Conflict) == 0 || !e.FiguresDisagree {
				continue
			}
			views[i].Others, views[i].Newest = e.Conflict, true
			for _, d := range e.Disagreeing {
				j, ok := at[key(d)]
				if !ok {
					continue
				}
				views[j].Others, views[j].OtherLink = []string{e.Source}, views[i].Link
				if others[i] = append(others[i], j); len(others[i]) == 1 {
					views[i].OtherLink = views[j].Link
				}
				// As old as the picture would say, were it the latest (review Q, Q10).
				when := d.GetUpdatedAt().AsTime()
				if r := hits[j].GetReceivedAt(); r != nil && r.AsTime().Before(when) {
					when = r.AsTime()
				}
				if l := limit(d.GetKind()); l >= 0 && now.Sub(when) > l {
					views[j].Stale = true
				}
			}
		}
	}
}

// together reorders views so that each hit of others' keys has the hits it names right after it,
// the group standing where the first of its hits stood; the other hits keep their order.
func together(views []hitView, others map[int][]int) {
	if len(others) == 0 {
		return
	}
	lead := map[int]int{}
	for i, js := range others {
		for _, j := range js {
			lead[j] = i
		}
	}
	order := make([]hitView, 0, len(views))
	placed := make([]bool, len(views))
	for k := range views {
		if placed[k] {
			continue
		}
		i, ok := lead[k]
		if !ok {
			i = k
		}
		for _, x := range append([]int{i}, others[i]...) {
			if !placed[x] {
				order, placed[x] = append(order, views[x]), true
			}
		}
	}
	copy(views, order)
}

// nearestCrisis is the crisis of known that typed is a typo of: one edit from it, or two for a
// name of six letters or more; "" when none is, or more than one is as near.
func nearestCrisis(known []string, typed string) string {
	typed = strings.ToLower(typed)
	best, bestD, ties := "", 3, 0
	for _, k := range known {
		d := policy.EditDistance(k, typed)
		switch {
		case d < bestD:
			best, bestD, ties = k, d, 0
		case d == bestD:
			ties++
		}
	}
	if best == "" || ties > 0 || bestD == 0 || bestD == 2 && utf8.RuneCountInString(typed) < 6 {
		return ""
	}
	return best
}

// crisisNamed is the crisis of known that typed names: itself, or the one it is as people
// write it (Oekraïne or Oekraine for oekraine); false when it names none.
func crisisNamed(known []string, typed string) (string, bool) {
	for _, c := range known {
		if c == typed || record.Normalize(c) == record.Normalize(typed) {
			return c, true
		}
	}
	return "", false
}

// answerStart is how much of a Q&A's answer a list shows.
const answerStart = 200

// qaAnswer is the start of a Q&A body's answer, on one line and cut at answerStart characters;
// "" when it has none (or a policy withheld it).
func qaAnswer(body []byte) string {
	var b struct {
		Answer string `json:"answer"`
	}
	_ = json.Unmarshal(body, &b) // a body that is not an object has no answer
	a := record.OneLine(b.Answer)
	if r := []rune(a); len(r) > answerStart {
		a = strings.TrimRightFunc(string(r[:answerStart]), unicode.IsSpace) + "…"
	}
	return a
}

// figureView is one number of a record, with its name.
type figureView struct{ Label, Value string }

// hitFigures are the numbers of body that kind k sums in the picture, in k's order, each by the
// picture's name for it, else by label (k's fieldLabeler); a field the body lacks (or the source
// withheld) is left out.
func hitFigures(l *Lang, k *record.Kind, label func(string) string, body []byte) []figureView {
	if k == nil || len(k.Aggregate) == 0 {
		return nil
	}
	var b map[string]json.RawMessage
	if json.Unmarshal(body, &b) != nil {
		return nil
	}
	var out []figureView
	for _, f := range k.Aggregate {
		var n float64
		if json.Unmarshal(b[f], &n) != nil {
			continue
		}
		out = append(out, figureView{Label: aggLabel(l, k.Name, f, label(f)), Value: strconv.FormatFloat(n, 'f', -1, 64)})
	}
	return out
}

// aggLabel is the picture's name for a summed field of a kind (agg.KIND.FIELD in the catalogue),
// else fallback.
func aggLabel(l *Lang, kind, field, fallback string) string {
	if key := "agg." + kind + "." + field; l.Has(key) {
		return l.T(key)
	}
	return fallback
}

// plain is the text of a snippet's parts, without the marks.
func plain(parts []snippetPart) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// termsIn splits the terms of a search into those that some hit holds, in its text (as the kind
// declares it, see record.Texts) or in its snippet (an attachment's words), and those that none
// does, each in the order given. Both sides are normalised as the index reads them, and spaces
// collapsed, for a phrase.
func (s *Server) termsIn(terms []string, hits []*pb.SearchHit) (found, missing []string) {
	texts := make([]string, len(hits))
	for i, h := range hits {
		parts := record.Texts(s.c.Kinds.Get(h.GetRecord().GetKind()), h.GetRecord().GetBody())
		parts = append(parts, plain(snippetParts(h.GetSnippet())))
		texts[i] = strings.Join(strings.Fields(record.Normalize(strings.Join(parts, " "))), " ")
	}
	for _, t := range terms {
		if slices.ContainsFunc(texts, func(text string) bool { return strings.Contains(text, t) }) {
			found = append(found, t)
		} else {
			missing = append(missing, t)
		}
	}
	return found, missing
}

// quoted is words in quotes, separated by commas: “in”, “de”.
func quoted(words []string) string {
	q := make([]string, 0, len(words))
	seen := map[string]bool{}
	for _, w := range words {
		// A word typed twice is named once: a pasted question says "in" more than once.
		if !seen[w] {
			seen[w] = true
			q = append(q, "“"+w+"”")
		}
	}
	return strings.Join(q, ", ")
}

// snippetPart is a piece of a snippet: the words that matched, or the text around them.
type snippetPart struct {
	Text  string
	Match bool
}

// snippetParts splits a snippet at its «marks», which the template shows as <mark>. The marks
// are the source's, so they are read, never trusted as HTML: each part is text.
func snippetParts(s string) []snippetPart {
	var parts []snippetPart
	for s != "" {
		open := strings.Index(s, "«")
		if open < 0 {
			break
		}
		end := strings.Index(s[open:], "»")
		if end < 0 {
			break
		}
		if open > 0 {
			parts = append(parts, snippetPart{Text: s[:open]})
		}
		parts = append(parts, snippetPart{Text: s[open+len("«") : open+end], Match: true})
		s = s[open+end+len("»"):]
	}
	if s != "" {
		parts = append(parts, snippetPart{Text: s})
	}
	return parts
}

// kindOffer is, for a search whose words name a kind of figures (vrije opvangplaatsen, bedden:
// the words of its name, of the labels of the fields it sums, and kindwords.KIND in the page's
// language), that kind and the search of it, with those words left out, in the region another
// word names (Zeeland); "" when no word names one. Records hold the figures, not the words that
// label them, so such words found nothing (review P, P1).
func (s *Server) kindOffer(r *request, text *record.TextQuery, region string) (name, link string) {
	for _, kind := range s.c.Kinds.Names() {
		k := s.c.Kinds.Get(kind)
		if k == nil || len(k.Aggregate) == 0 {
			continue
		}
		// The words that name the kind (its name, kindwords.KIND) and those of its fields'
		// labels, which alone (vrije, totaal) say too little to offer it (review Q, Q10).
		strong := strings.Fields(record.Normalize(r.L.Kind(kind)))
		if key := "kindwords." + kind; r.L.Has(key) {
			strong = append(strong, strings.Fields(record.Normalize(r.L.T(key)))...)
		}
		var weak []string
		label := fieldLabeler(r.L, k)
		for _, f := range k.Aggregate {
			weak = append(weak, strings.Fields(record.Normalize(label(f)))...)
		}
		// A word of them, or the end of a compound of one (capaciteit of opvangcapaciteit), or
		// one of them the end of the word typed (plaatsen of opvangplaatsen).
		names := func(words []string, term string) bool {
			t := record.Singular(term)
			return slices.ContainsFunc(words, func(w string) bool {
				w = record.Singular(w)
				return w == t || utf8.RuneCountInString(t) >= 5 && strings.HasSuffix(w, t) || utf8.RuneCountInString(w) >= 5 && strings.HasSuffix(t, w)
			})
		}
		var rest []string
		named := false
		for _, t := range text.Terms {
			switch {
			case names(strong, t):
				named = true
			case names(weak, t):
			default:
				rest = append(rest, t)
			}
		}
		if !named {
			continue
		}
		set := []string{"kind", kind}
		if region == "" {
			if code, i := namedRegion(&record.TextQuery{Terms: rest}); code != "" {
				set, rest = append(set, "region", code), slices.Delete(rest, i, i+1)
			}
		}
		return r.L.Kind(kind), searchLink(r, rest, set...)
	}
	return "", ""
}

// synonymOffer is, for a search that found nothing, the same search with its first word that
// has one in search.synonyms (groups of words separated by ;, the words of a group by spaces)
// replaced by the first other word of its group; "" when none has.
func synonymOffer(r *request, text *record.TextQuery) (words, link string) {
	if !r.L.Has("search.synonyms") {
		return "", ""
	}
	for _, group := range strings.Split(r.L.T("search.synonyms"), ";") {
		g := strings.Fields(record.Normalize(group))
		for i, term := range text.Terms {
			j := slices.IndexFunc(g, func(w string) bool { return record.Singular(w) == record.Singular(term) })
			if j < 0 {
				continue
			}
			terms := slices.Clone(text.Terms)
			terms[i] = g[(j+1)%len(g)]
			return (&record.TextQuery{Terms: terms}).String(), searchLink(r, terms)
		}
	}
	return "", ""
}

// orgOffer is, for a search whose words name one organisation (ncc, szw, a word of its name),
// that organisation and the same search of its records alone, with the word left out; "" when no
// word names exactly one. Records do not say their source's name in their text, so such a word
// found nothing (review P, P8).
func orgOffer(r *request, text *record.TextQuery, orgs []orgChoice) (name, link string) {
	for i, term := range text.Terms {
		// A region's name is the region's, not that of the organisation named after it (VR
		// Zeeland): the region offer takes it (review R, R2).
		if code, _ := namedRegion(&record.TextQuery{Terms: []string{term}}); code != "" {
			continue
		}
		var hit *orgChoice
		n := 0
		for j := range orgs {
			o := &orgs[j]
			words := append(strings.Fields(record.Normalize(o.Name)), record.Normalize(o.Name), strings.Split(o.TrustDomain, ".")[0])
			if slices.Contains(words, term) {
				hit, n = o, n+1
			}
		}
		if n != 1 {
			continue
		}
		return hit.Name, searchLink(r, slices.Delete(slices.Clone(text.Terms), i, i+1), "org", hit.TrustDomain)
	}
	return "", ""
}

// searchLink is the search of the page's URL with terms for its words and the filters of set
// (key, value, key, value, …): the link an offer takes.
func searchLink(r *request, terms []string, set ...string) string {
	q := r.URL.Query()
	for i := 0; i+1 < len(set); i += 2 {
		q.Set(set[i], set[i+1])
	}
	if q.Del("q"); len(terms) > 0 {
		q.Set("q", (&record.TextQuery{Terms: terms}).String())
	}
	return "/zoeken?" + q.Encode()
}

// namedRegion is the safety region a term of text names (zeeland), and the term's index; "" when
// none does.
func namedRegion(text *record.TextQuery) (code string, i int) {
	for i, term := range text.Terms {
		for _, code := range regionCodes {
			if n := record.RegionName(code); n != "" && record.Normalize(n) == term {
				return code, i
			}
		}
	}
	return "", -1
}

// regionOffer is, for a search whose words name a safety region (zeeland), that region and the
// same search in it, with its name left out of the words; "" when no word names one.
func regionOffer(r *request, text *record.TextQuery) (name, link string) {
	code, i := namedRegion(text)
	if code == "" {
		return "", ""
	}
	return r.L.Region(code), searchLink(r, slices.Delete(slices.Clone(text.Terms), i, i+1), "region", code)
}

// differsShown is how many places the picture names whose sources differ outside the figures.
const differsShown = 10

// unanswered says, of a partner that did not answer, who, with how old the copy of theirs is
// that the page shows; "" for one that answered.
func unanswered(l *Lang, p *pb.PeerStatus, pv partnerView) string {
	switch {
	case !search.Unanswered(p):
		return ""
	case p.CacheAgeMs > 0 && !p.FeedOpen:
		return l.T("picture.partial_peer", pv.Name, copyClock(p))
	case pv.CacheAge != "":
		return l.T("picture.partial_peer_heard", pv.Name, pv.CacheAge)
	}
	return l.T("picture.partial_peer_nocopy", pv.Name)
}

// orgChoice is an organisation the search can be limited to.
type orgChoice struct {
	TrustDomain, Name string
	Current           bool
}

// search runs SearchService.Search with the form's filters.
func (s *Server) search(w http.ResponseWriter, r *request) {
	ctx := r.ctx()
	q := r.URL.Query()
	v := &searchView{Regions: regionCodes, Kind: q.Get("kind"), Crisis: strings.TrimSpace(q.Get("crisis")), Region: strings.TrimSpace(q.Get("region")), Org: q.Get("org"),
		Text: strings.TrimSpace(q.Get("q"))}
	v.Orgs = s.orgChoices(r, v.Org)
	st, err := pb.NewStatusServiceClient(s.c.Conn).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	v.Kinds = st.Kinds
	if known, err := pb.NewPhaseServiceClient(s.c.Conn).List(ctx, &pb.ListPhasesRequest{Exercise: r.exercise(), Known: true}); err == nil {
		for _, p := range known.Phases {
			v.Crises = append(v.Crises, p.Crisis)
		}
	}
	if name, ok := crisisNamed(v.Crises, v.Crisis); ok {
		v.Crisis = name // as on the picture page
	} else if v.Crisis != "" {
		if record.CheckCrisis("crisis", v.Crisis) != nil {
			v.CrisisError = r.L.T("search.crisis_bad", v.Crisis, cmp.Or(strings.Join(v.Crises, ", "), r.L.T("picture.known_none")))
			s.render(w, r.Request, http.StatusBadRequest, "search", s.newPage(r, "search", searchTitle(r.L, v.Text), v))
			return
		}
		v.CrisisUnknown = true
		if near := nearestCrisis(v.Crises, v.Crisis); near != "" {
			again := r.URL.Query()
			again.Set("crisis", near)
			v.CrisisSuggest, v.CrisisSuggestLink = near, "/zoeken?"+again.Encode()
		}
	}
	// Words as people type them: "opvang in de regio" searches for opvang and regio, and says
	// that it left out in and de, which the index cannot look for.
	var text *record.TextQuery
	if v.Text != "" {
		var ignored []string
		text, ignored, err = record.ParseTextLoosely("q", v.Text)
		if err != nil {
			switch {
			case len(ignored) > 0: // nothing but words too short to look for
				key := "search.text_short"
				if len(ignored) > 1 {
					key = "search.text_short_many"
				}
				v.TextError = r.L.T(key, quoted(ignored), record.MinTermRunes)
			case errors.Is(err, record.ErrOpenPhrase):
				v.TextError = r.L.T("search.text_open_phrase")
			case len(v.Text) > record.MaxQueryBytes:
				// A link or a pasted text can be longer than the box lets anyone type.
				v.TextError = r.L.T("search.text_long", record.MaxQueryBytes)
			case errors.Is(err, record.ErrNoWords):
				v.TextError = r.L.T("search.text_none")
			case errors.Is(err, record.ErrNotUTF8):
				v.TextError = r.L.T("search.text_utf8")
			default:
				v.TextError = r.L.T("search.text_error", strings.TrimPrefix(err.Error(), "q: "))
			}
			s.render(w, r.Request, http.StatusBadRequest, "search", s.newPage(r, "search", searchTitle(r.L, v.Text), v))
			return
		}
		if len(ignored) > 0 {
			v.Ignored = r.L.T("search.ignored", quoted(ignored), record.MinTermRunes)
		}
		if len(text.Frame) > 0 {
			key := "search.frame"
			if len(text.Frame) == 1 {
				key = "search.frame_one"
			}
			v.Frame = r.L.T(key, quoted(text.Frame))
		}
		if len(text.LeftOut) > 0 {
			// A pasted question: searched on its most telling words, the rest named.
			v.SearchedFor = text.String()
			v.LeftOut = r.L.T("search.left_out", record.MaxQueryTerms, v.SearchedFor, quoted(text.LeftOut))
		}
		if v.Region == "" {
			v.RegionName, v.RegionLink = regionOffer(r, text)
		}
		if v.Kind == "" {
			v.KindName, v.KindLink = s.kindOffer(r, text, v.Region)
			v.KindName = strings.ToLower(v.KindName) // inside a sentence
		}
		if v.Org == "" && v.KindLink == "" {
			v.OrgName, v.OrgLink = orgOffer(r, text, v.Orgs)
		}
		if v.KindLink != "" {
			v.RegionName, v.RegionLink = "", "" // the kind's offer is in the region already
		}
	}
	if q.Has("kind") || q.Has("crisis") || q.Has("region") || q.Has("org") || text != nil {
		v.Searched = true
		f := &pb.Filter{Crisis: v.Crisis, Region: v.Region, Limit: searchPageLimit, Mode: r.mode()}
		if text != nil {
			f.Text = text.String()
		}
		if v.Kind != "" {
			f.Kinds = []string{v.Kind}
		}
		req := &pb.SearchRequest{Filter: f}
		if v.Org != "" {
			// Only that organisation is asked: the others disclose nothing to this search.
			req.Origins = []string{v.Org}
		}
		// A search of the node's own records alone asks no partner; one with words takes a page
		// from the person's limit all the same, as its index work may be costly (review S, S2).
		own := v.Org != "" && (v.Org == s.c.Org || v.Org == s.c.Name)
		if (!own || text != nil) && !s.askPartners(w, r) {
			return
		}
		var trailer metadata.MD
		resp, err := pb.NewSearchServiceClient(s.c.Conn).Search(ctx, req, grpc.Trailer(&trailer))
		if field, _ := api.Field(err); status.Code(err) == codes.InvalidArgument && field == "origins[0]" {
			// A link to an organisation that is no partner (any more): said at the field.
			v.OrgError, v.Searched = r.L.T("search.org_unknown", v.Org), false
			s.render(w, r.Request, http.StatusBadRequest, "search", s.newPage(r, "search", searchTitle(r.L, v.Text), v))
			return
		} else if err != nil {
			s.failCall(w, r, err)
			return
		}
		// No record holds all the words: the records that hold one or more of them, best first,
		// rather than nothing and advice to check the spelling (review P, P2). It asks the
		// partners again, so it takes a page from the person's limit (review Q, Q9); over it, or
		// refused, the first answer stands.
		if len(resp.Hits) == 0 && text != nil && len(text.Terms) > 1 && s.limits.take(r.Session.Person.String(), 0) == 0 {
			f.TextAny = true
			if again, err := pb.NewSearchServiceClient(s.c.Conn).Search(ctx, req); err == nil && len(again.Hits) > 0 {
				resp, v.AnyWords = again, r.L.T("search.any_words")
				// Which words the results hold, and which none of them does (review R, R11).
				if found, missing := s.termsIn(text.Terms, again.Hits); len(missing) > 0 && len(found) > 0 {
					v.AnyWords = r.L.T("search.any_words_missing", quoted(found), quoted(missing))
				}
			}
		}
		v.Partial, v.TextPending = resp.Partial, resp.TextPending
		now := time.Now()
		hits := resp.Hits // best first, as Search orders them
		// One labeler a kind, not one a hit: each reads its kind's schema.
		labelers := map[*record.Kind]func(string) string{}
		labelOf := func(k *record.Kind) func(string) string {
			if labelers[k] == nil {
				labelers[k] = fieldLabeler(r.L, k)
			}
			return labelers[k]
		}
		shown := make([]*pb.Record, len(hits))
		for i, h := range hits {
			shown[i] = h.Record
		}
		v.Marking, v.At = marking(r.L, shown), local(now).Format("2006-01-02 15:04 MST")
		orgOf := s.orgNamer(r)
		for _, h := range hits {
			rec := h.Record
			hv := hitView{Kind: rec.Kind, Crisis: rec.Crisis, Region: rec.Region, Title: titleOf(r.L, rec), Origin: rec.Origin,
				Classification: r.L.Class(rec.Classification), FromCache: h.FromCache, Redacted: len(h.Redacted), Link: withBack(recordLink(rec), r.URL.RequestURI()),
				Policies: strings.Join(h.Policies, ", "), Purpose: h.Purpose, Validity: h.Validity, Snippet: snippetParts(h.Snippet),
				Files: filesTag(r.L, rec.Body), SnippetFile: h.SnippetFile}
			if h.SnippetFile != "" {
				hv.SnippetLink = snippetLink(rec, h.SnippetFile, r)
			}
			if k := s.c.Kinds.Get(rec.Kind); k != nil {
				hv.Figures = hitFigures(r.L, k, labelOf(k), rec.Body)
			}
			if h.ReceivedAt != nil {
				hv.Received = age(r.L, int64(now.Sub(h.ReceivedAt.AsTime())/time.Second))
			}
			if hv.Title == "" {
				hv.Title = untitled(r.L, rec, orgOf)
			}
			// A match in the title is marked in the title, not repeated under it; a file's words
			// that read like the title are still the file's.
			if hv.Snippet != nil && hv.SnippetFile == "" && plain(hv.Snippet) == hv.Title {
				hv.TitleMarked, hv.Snippet = hv.Snippet, nil
			}
			if hv.Snippet == nil && rec.Kind == "qa" {
				hv.Answer = qaAnswer(rec.Body)
			}
			if rec.UpdatedAt != nil {
				hv.Age = age(r.L, int64(now.Sub(rec.UpdatedAt.AsTime())/time.Second))
				hv.Updated = rec.UpdatedAt.AsTime()
			}
			v.Hits = append(v.Hits, hv)
		}
		s.figureMarks(hits, v.Hits, now)
		if len(v.Hits) == 0 {
			v.None = v.noneText(r.L)
			if text != nil {
				v.Synonym, v.SynonymLink = synonymOffer(r, text)
			}
		}
		if sug := trailer.Get(search.SuggestTrailer); len(sug) > 0 && sug[0] != f.Text {
			// Offered, never sent: only a click searches with it, at the partners too.
			v.Suggest = sug[0]
			// The word it corrected is marked: the rest reads as the person's own, folded.
			if st, err := record.ParseText("q", sug[0]); err == nil && text != nil && len(st.Terms) == len(text.Terms) {
				for i, t := range st.Terms {
					v.SuggestParts = append(v.SuggestParts, snippetPart{Text: (&record.TextQuery{Terms: []string{t}}).String(), Match: t != text.Terms[i]})
				}
			}
			again := r.URL.Query()
			again.Set("q", sug[0])
			v.SuggestLink = "/zoeken?" + again.Encode()
		}
		names := s.partnerNames(r)
		if cut := search.Cut(resp, searchPageLimit); len(cut) > 0 {
			for i, peer := range cut {
				if peer == "" {
					cut[i] = s.c.Name
				}
				for _, p := range resp.Peers {
					if p.Peer == peer {
						cut[i] = partnerName(names, peer, p.TrustDomain)
					}
				}
			}
			v.Capped = r.L.T("search.capped", strings.Join(cut, ", "), searchPageLimit)
		}
		for _, p := range resp.Peers {
			pv := partnerView{Name: partnerName(names, p.Peer, p.TrustDomain), TrustDomain: p.TrustDomain, State: shownState(p), Records: int(p.Count)}
			if v.Org == "" && len(resp.Peers) > 1 {
				only := r.URL.Query()
				only.Set("org", p.TrustDomain)
				pv.Only = "/zoeken?" + only.Encode()
			}
			pv.CacheAge = cacheAge(r.L, p)
			if line := unanswered(r.L, p, pv); line != "" {
				v.Unanswered = append(v.Unanswered, line)
			}
			v.Partners = append(v.Partners, pv)
		}
		for i := range v.Hits {
			v.Cached = v.Cached || v.Hits[i].FromCache
			v.Hits[i].Origin = s.orgName(v.Partners, v.Hits[i].Origin)
			for j, td := range v.Hits[i].Others {
				v.Hits[i].Others[j] = s.orgName(v.Partners, td)
			}
		}
	}
	s.render(w, r.Request, http.StatusOK, "search", s.newPage(r, "search", searchTitle(r.L, v.Text), v))
}

// titleWords bounds the words a search's title repeats: the window's title and a tab's name
// have room for a few.
const titleWords = 40

// searchTitle is the title of a search for text: with its words, so that two searches open in
// two tabs are told apart (review AB, AB8); shortened at a word's end, as a title has room for a
// few.
func searchTitle(l *Lang, text string) string {
	words := strings.Join(strings.Fields(text), " ")
	if words == "" {
		return l.T("search.title")
	}
	if r := []rune(words); len(r) > titleWords {
		words = string(r[:titleWords])
		if i := strings.LastIndexByte(words, ' '); i > 0 && r[titleWords] != ' ' {
			words = words[:i] // at a word's end
		}
		words += "…"
	}
	return l.T("search.title_for", words)
}

// orgName is what the pages call the org of trust domain td: this node's name, or the name this
// node knows a partner by (its peer name); td itself when it is neither.
func (s *Server) orgName(partners []partnerView, td string) string {
	if td == s.c.Org && s.c.Name != "" {
		return s.c.Name
	}
	for _, p := range partners {
		if p.TrustDomain == td && p.Name != "" {
			return p.Name
		}
	}
	return td
}

// partnerNames are the partners' organisations by trust domain, by the names they go by for
// people: the name a peer gave in its invitation, or a configured peer's org_name. A partner
// without one is left out, and the pages call it by its peer name. A peer the config file
// shadows still lends its name. A failed listing leaves every partner by its peer name.
//
// A page asks the node once, however many records or partners it names.
func (s *Server) partnerNames(r *request) map[string]string {
	if r.partnerNames != nil {
		return r.partnerNames
	}
	out := map[string]string{}
	r.partnerNames = out
	if s.c.Conn == nil {
		return out
	}
	peers, err := pb.NewPeerServiceClient(s.c.Conn).List(r.ctx(), &pb.ListPeersRequest{})
	if err != nil {
		s.log.Warn("the peers could not be listed for their names", "err", err)
		return out
	}
	for _, p := range peers.Peers {
		if p.OrgName != "" && (out[p.TrustDomain] == "" || p.Active) {
			out[p.TrustDomain] = p.OrgName
		}
	}
	tellApart(s.c.Name, out)
	return out
}

// tellApart adds the trust domain to each partner's name in names (by trust domain) that
// another partner, or this node (own), also goes by, ignoring case and spaces at the ends: a
// partner names itself in its invitation, and one that called itself as another did would pass
// for it on every page that names sources.
func tellApart(own string, names map[string]string) {
	fold := func(n string) string { return strings.ToLower(strings.TrimSpace(n)) }
	count := map[string]int{fold(own): 1}
	for _, n := range names {
		count[fold(n)]++
	}
	for td, n := range names {
		if count[fold(n)] > 1 {
			names[td] = strings.TrimSpace(n) + " (" + td + ")"
		}
	}
}

// orgNamer names the org of a trust domain as the pages do: this node by its name, a partner by
// its organisation's name (partnerNames), else the trust domain.
func (s *Server) orgNamer(r *request) func(td string) string {
	return func(td string) string {
		if td == s.c.Org && s.c.Name != "" {
			return s.c.Name
		}
		return partnerName(s.partnerNames(r), td, td) // asked only when a partner is named
	}
}

// untitled is what a record without a title is called: an assessment by its author and crisis
// (Duiding NCC: oekraine), a response by who responds to whose assessment; else its id.
func untitled(l *Lang, rec *pb.Record, org func(td string) string) string {
	switch rec.GetKind() {
	case "assessment":
		return l.T("title.assessment", org(rec.Origin), rec.Crisis)
	case "assessment.response":
		var b struct {
			Origin string `json:"assessment_origin"`
		}
		if json.Unmarshal(rec.Body, &b) == nil && b.Origin != "" {
			return l.T("title.response", org(rec.Origin), org(b.Origin))
		}
	}
	return rec.GetId()
}

// recordName is what people call a record: its title, else untitled's name for it.
func (s *Server) recordName(r *request, rec *pb.Record) string {
	if t := titleOf(r.L, rec); t != "" {
		return t
	}
	return untitled(r.L, rec, s.orgNamer(r))
}

// partnerName is a partner as people know it: its organisation's name, else its peer name.
func partnerName(names map[string]string, peer, td string) string {
	if n := names[td]; n != "" {
		return n
	}
	return peer
}

// searchPageLimit is how many results the search page takes from each source.
const searchPageLimit = 200

type recordView struct {
	Rec *pb.Record
	// Policies and Purpose say how a partner's record came (see hitView), Received when.
	Policies, Purpose string
	Received          template.HTML
	// Edit is the form that changes an own record, for a person who may.
	Edit string
	// Title is the body's title, or the record's id.
	Title string
	// Classification is the record's, in the page's language; At is when the page was made:
	// a printout carries both.
	Classification, At string
	Source             string
	FromCache          bool
	Fields             []fieldView
	Labels             []string
	// Updated and ValidUntil are written for people (Lang.When).
	Updated, ValidUntil template.HTML
	// Versions are what the node's history keeps of the record's versions, newest first.
	Versions []versionView
	// Files are the files the record names (its attachments), each with a link to take it.
	Files []fileView
	// Validity marks a superseded, expired or not yet valid document (record.Validity); a
	// superseded one links to the document that replaced it, from the same source.
	Validity, Successor, SuccessorLink string
	// SuccessorTitle is the successor's title (its question, for a Q&A), when it can be read;
	// the link says its id otherwise (review P, P11).
	SuccessorTitle string
	// SuccessorMissing: the successor is an own record that is not there (deleted, or not
	// written yet): the page names it without a link to nothing.
	SuccessorMissing bool
	// Back is the page the record was reached from (?terug), BackText the link's words.
	Back, BackText string
	// Tech is set when some fields are technical details (fieldView.Tech).
	Tech bool
}

// fileView is one file a record names. MediaType is its type in words (PDF-document); Link
// takes it by its SHA256, never by its name, which two of a record's files may share.
type fileView struct {
	SHA256, Name, MediaType, Size, Link string
}

type fieldView struct {
	Name, Value string
	Withheld    bool
	// Label is the field's name for people (fieldLabeler).
	Label string
	// Tech marks a field of the stored body that a record page shows under its technical
	// details, after the fields read for people (an alert's).
	Tech bool
	// Link is set when the value is a web address (http or https): the page links it.
	Link bool
}

// sortFields sorts the names of body fields: first those of order (the kind's schema's order),
// in that order, then the others by name.
func sortFields(names, order []string) {
	rank := func(name string) int {
		if i := slices.Index(order, name); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
}

// fieldLabeler names the body fields of kind k for people: by the title k's schema gives a
// field, else in the page's language for the fields of the built-in kinds ("question" is
// Vraag), else by the field's own name.
func fieldLabeler(l *Lang, k *record.Kind) func(name string) string {
	var titles map[string]schemaProp
	if doc := schemaDoc(k); len(doc.Properties) > 0 {
		_ = json.Unmarshal(doc.Properties, &titles)
	}
	return func(name string) string {
		if t := titles[name].Title; t != "" {
			return t
		}
		if key := "bodyfield." + name; l.Has(key) {
			return l.T(key)
		}
		return name
	}
}

// orgChoices are this org and its peers, for the search's filter on origin.
func (s *Server) orgChoices(r *request, current string) []orgChoice {
	out := []orgChoice{{TrustDomain: s.c.Org, Name: s.c.Name, Current: current == s.c.Org}}
	peers, err := pb.NewPeerServiceClient(s.c.Conn).List(r.ctx(), &pb.ListPeersRequest{})
	if err != nil {
		return out
	}
	for _, p := range peers.Peers {
		name := p.Name
		if p.OrgName != "" {
			name = p.OrgName
		}
		out = append(out, orgChoice{TrustDomain: p.TrustDomain, Name: name, Current: current == p.TrustDomain})
	}
	return out
}

// record shows one record: an own record through RecordService.Get, a partner's through a
// search of its source for its id, run as the person, so that it shows what the source let
// through and what it withheld (or, when the source does not answer, what its cache holds).
func (s *Server) record(w http.ResponseWriter, r *request) {
	ctx := r.ctx()
	q := r.URL.Query()
	origin, id := q.Get("origin"), q.Get("id")
	if id == "" {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.invalid", "id"))
		return
	}
	v := &recordView{Back: "/zoeken", BackText: r.L.T("record.back")}
	if e := r.exercise(); e != "" {
		v.Back += "?" + url.Values{"exercise": {e}}.Encode()
	}
	if t := q.Get("terug"); t != "" {
		v.Back = localPath(t)
		if u, err := url.Parse(v.Back); err == nil && u.Path == "/" {
			v.BackText = r.L.T("record.back_picture")
		} else if err == nil && u.Path == "/records" {
			v.BackText = r.L.T("record.back_records")
		} else if err != nil || u.Path != "/zoeken" {
			v.BackText = r.L.T("record.back_page")
		}
	}
	var redacted []string
	if origin == "" || origin == s.c.Org {
		rec, err := pb.NewRecordServiceClient(s.c.Conn).Get(ctx, &pb.GetRequest{Id: id, Mode: r.mode()})
		if err != nil {
			s.failCall(w, r, err)
			return
		}
		v.Rec, v.Source = rec, s.c.Name
		if isWriter(r) && !rec.Tombstone {
			v.Edit = r.inMode("/records/wijzigen?id=" + url.QueryEscape(rec.Id))
		}
	} else {
		// Only the source is asked, for this one record.
		if !s.askPartners(w, r) {
			return
		}
		f := &pb.Filter{Ids: []string{id}, Mode: r.mode()}
		resp, err := pb.NewSearchServiceClient(s.c.Conn).Search(ctx, &pb.SearchRequest{Filter: f, Origins: []string{origin}})
		if field, _ := api.Field(err); status.Code(err) == codes.InvalidArgument && (field == "origins[0]" || field == "filter.ids[0]") {
			// Not a peer (any more), or not an id: nothing this node can show.
			s.failIn(w, r, http.StatusNotFound, r.L.T("error.not_found"))
			return
		} else if err != nil {
			s.failCall(w, r, err)
			return
		}
		for _, h := range resp.Hits {
			if h.Record.GetOrigin() == origin && h.Record.GetId() == id {
				v.Rec, v.FromCache, redacted = h.Record, h.FromCache, h.Redacted
				v.Source = partnerName(s.partnerNames(r), h.Source, origin)
				v.Policies, v.Purpose = strings.Join(h.Policies, ", "), h.Purpose
				if h.ReceivedAt != nil {
					v.Received = r.L.WhenAgo(h.ReceivedAt.AsTime(), time.Now())
				}
				break
			}
		}
		if v.Rec == nil && len(resp.Peers) == 1 && (resp.Peers[0].State == search.Unreachable || resp.Peers[0].State == search.TimedOut) {
			// The source did not answer and the cache does not hold the record: it may exist.
			s.failIn(w, r, http.StatusBadGateway, r.L.T("record.source_silent"))
			return
		} else if v.Rec == nil {
			s.failIn(w, r, http.StatusNotFound, r.L.T("error.not_found"))
			return
		}
	}
	rec := v.Rec
	v.Classification, v.At = r.L.Class(rec.Classification), local(time.Now()).Format("2006-01-02 15:04 MST")
	if rec.UpdatedAt != nil {
		v.Updated = r.L.WhenAgo(rec.UpdatedAt.AsTime(), time.Now())
	}
	if rec.ValidUntil != nil {
		v.ValidUntil = r.L.When(rec.ValidUntil.AsTime())
	}
	for k, val := range rec.Labels {
		v.Labels = append(v.Labels, k+"="+val)
	}
	sort.Strings(v.Labels)
	withheld := withheldFields(redacted)
	kind := s.c.Kinds.Get(rec.Kind)
	order, label := kind.Fields(), fieldLabeler(r.L, kind)
	if rec.Kind == record.AlertKind {
		v.Fields, v.Tech = alertRecordFields(r.L, rec.Body, withheld)
	}
	if !v.Tech {
		v.Fields = bodyFields(rec.Body, withheld, order, r.L)
		for i := range v.Fields {
			v.Fields[i].Label = label(v.Fields[i].Name)
		}
	}
	// The files the record names are listed to take, not shown as JSON; a withheld list stays
	// a withheld field, and one this node cannot read stays as the body has it.
	if files, err := record.Attachments(rec.Body); err == nil && len(files) > 0 && !withheld[record.AttachmentsField] {
		v.Files = fileViews(rec, files, r)
		v.Fields = slices.DeleteFunc(v.Fields, func(f fieldView) bool { return f.Name == record.AttachmentsField })
	}
	versions, err := s.versions(r, rec, withheld, order, label)
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	v.Versions = versions
	if v.Validity = record.Validity(rec, time.Now()); v.Validity == record.Superseded {
		v.Successor = supersededBy(rec.Body)
		v.SuccessorLink = recordLink(&pb.Record{Origin: rec.Origin, Id: v.Successor, Exercise: rec.Exercise})
		if origin == "" || origin == s.c.Org {
			next, err := pb.NewRecordServiceClient(s.c.Conn).Get(ctx, &pb.GetRequest{Id: v.Successor, Mode: r.mode()})
			v.SuccessorMissing = status.Code(err) == codes.NotFound
			if err == nil {
				v.SuccessorTitle = titleOf(r.L, next)
			}
		} else if s.limits.take(r.Session.Person.String(), 0) > 0 {
			// Over the person's limit of pages that ask the partners: named by its id.
		} else if resp, err := pb.NewSearchServiceClient(s.c.Conn).Search(ctx, &pb.SearchRequest{
			Filter: &pb.Filter{Ids: []string{v.Successor}, Mode: r.mode()}, Origins: []string{origin}}); err == nil && len(resp.Hits) == 1 {
			// As the partner shares it with this node, or its last copy here.
			v.SuccessorTitle = titleOf(r.L, resp.Hits[0].Record)
		}
	}
	v.Title = s.recordName(r, rec)
	s.render(w, r.Request, http.StatusOK, "record", s.newPage(r, "search", v.Title, v))
}

// fileViews are the files a record names, each with the link that takes it in the page's mode
// (see file).
func fileViews(rec *pb.Record, files []record.Attachment, r *request) []fileView {
	out := make([]fileView, len(files))
	for i, f := range files {
		q := r.modeValues(url.Values{"origin": {rec.Origin}, "id": {rec.Id}, "sha256": {f.SHA256}})
		out[i] = fileView{SHA256: f.SHA256, Name: f.Filename, MediaType: fileType(r.L, f.MediaType), Size: fileSize(r.L, f.Size), Link: "/bijlage?" + q.Encode()}
	}
	return out
}

// snippetLink takes the file of rec that a search hit's snippet is from, named name: the hit
// names it by its name alone. When two of the record's files have that name, which one holds
// the words is not known: there is no link then ("", the name is shown as text), rather than
// one to whichever comes first.
func snippetLink(rec *pb.Record, name string, r *request) string {
	files, _ := record.Attachments(rec.Body)
	link := ""
	for _, f := range fileViews(rec, files, r) {
		if f.Name != name {
			continue
		}
		if link != "" {
			return ""
		}
		link = f.Link
	}
	return link
}

// fileTypes are the message keys of the media types a node takes by default
// (attach.DefaultMediaTypes), without their parameters; images are said by fileType.
var fileTypes = map[string]string{
	attach.PDF: "filetype.pdf", attach.DOCX: "filetype.word", attach.XLSX: "filetype.excel",
	attach.PPTX: "filetype.powerpoint", attach.ODT: "filetype.odt", attach.ODS: "filetype.ods",
	attach.OLE: "filetype.office", attach.Zip: "filetype.zip", "text/plain": "filetype.text", "text/csv": "filetype.csv",
}

// fileType is a file's media type as people know it (PDF-document for application/pdf), or as
// it is for a type without words.
func fileType(l *Lang, mediaType string) string {
	base, _, _ := strings.Cut(mediaType, ";")
	base = strings.TrimSpace(base)
	if key, ok := fileTypes[base]; ok {
		return l.T(key)
	}
	if img, ok := strings.CutPrefix(base, "image/"); ok && img != "" {
		return l.T("filetype.image", strings.ToUpper(img))
	}
	return mediaType
}

// fileSize is a file's size for people: bytes, kB or MB, in the page's language.
func fileSize(l *Lang, n int64) string {
	switch {
	case n < 1000:
		return l.T("file.bytes", n)
	case n < 1000*1000:
		return l.T("file.kb", l.Number(math.Round(float64(n)/1000)))
	}
	return l.T("file.mb", l.Number(math.Round(float64(n)/1e5)/10))
}

// file sends a file that a record names, as a download: its type is the one the node sniffed
// from its content, its name the one the record gives it (never one a link asks for), and the
// browser is told to save it, never to show it in the page's origin. The call goes through
// AttachmentService as the person, in the page's mode, so the same rules decide: a partner's
// file is served only while this node holds the partner's record that names it, and an
// exercise's file only in the exercise.
func (s *Server) file(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	origin, id, sha := q.Get("origin"), q.Get("id"), q.Get("sha256")
	if id == "" || record.CheckSHA256("sha256", sha) != nil {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.invalid", "id, sha256"))
		return
	}
	recordID := id
	if origin != "" && origin != s.c.Org {
		recordID = origin + "/" + id
	}
	started := false
	err := attach.Fetch(r.ctx(), pb.NewAttachmentServiceClient(s.c.Conn), recordID, sha, r.mode(), func(a *pb.Attachment) (io.Writer, error) {
		name := a.Filename
		if attach.CheckName("filename", name, a.MediaType) != nil {
			name = sha[:12] // a name from before names were checked as they are now
		}
		h := w.Header()
		mediaType := a.MediaType
		if mediaType == "" {
			mediaType = "application/octet-stream"
		}
		h.Set("Content-Type", mediaType)
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		h.Set("Content-Length", strconv.FormatInt(a.Size, 10))
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		started = true
		return w, nil
	}, nil)
	switch {
	case err == nil:
	case started:
		// Part of the file went out and the rest failed, or did not match its hash: break the
		// download off, so that the browser says it failed rather than keeping a broken file.
		s.log.Warn("file download broke off", "person", r.Session.Person.String(), "record", recordID, "sha256", sha, "err", err)
		panic(http.ErrAbortHandler)
	case status.Code(err) == codes.Unavailable:
		s.failIn(w, r, http.StatusServiceUnavailable, r.L.T("file.not_yet"))
	default:
		s.failCall(w, r, err)
	}
}

// fieldText is a body field's value for people: see bodyFields.
func fieldText(l *Lang, name string, raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	switch x := v.(type) {
	case string:
		if l != nil {
			return l.Value(name, x)
		}
		return x
	case bool:
		if l != nil {
			return yesNo(l, x)
		}
	case float64:
		if l != nil {
			return l.Number(x)
		}
	}
	return string(raw)
}

// withheldFields are the body's top-level fields of the paths the source redacted (body.x).
func withheldFields(redacted []string) map[string]bool {
	withheld := map[string]bool{}
	for _, p := range redacted {
		withheld[strings.TrimPrefix(p, "body.")] = true
	}
	return withheld
}

// bodyFields lays a body out as one row per top-level field: first the fields the kind's schema
// declares, in its order (order), then any others in order of name; nested values show as JSON.
// A field the source withheld shows as withheld, whether or not the body still names it. With a
// language, a yes/no value and a figure read as people of the language read them, and a value
// the catalogue names (value.FIELD.VALUE, such as a sitrep's severity) in its words.
func bodyFields(body []byte, withheld map[string]bool, order []string, l *Lang) []fieldView {
	var b map[string]json.RawMessage
	_ = json.Unmarshal(body, &b)
	names := make([]string, 0, len(b)+len(withheld))
	for k := range b {
		names = append(names, k)
	}
	for k := range withheld {
		if _, ok := b[k]; !ok {
			names = append(names, k)
		}
	}
	sortFields(names, order)
	out := make([]fieldView, 0, len(names))
	for _, k := range names {
		if withheld[k] {
			out = append(out, fieldView{Name: k, Withheld: true})
			continue
		}
		f := fieldView{Name: k, Value: fieldText(l, k, b[k])}
		if u, err := url.Parse(f.Value); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && !strings.ContainsAny(f.Value, " \n") {
			f.Link = true
		}
		out = append(out, f)
	}
	return out
}
