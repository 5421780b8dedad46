package ui_test

import (
	"encoding/csv"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestApprovalThatLiftsARedaction: vr-utrecht withholds its sitreps' summary from ncc under one
// policy; a new policy for ncc and sitreps without redact would send it. The draft's preview and
// the other officer's approve page say so, naming the field and the policy; the author's own
// approve page says, in Dutch, that another officer must approve, and offers no button.
func TestApprovalThatLiftsARedaction(t *testing.T) {
	e := startFederation(t)
	e.utrecht.Approve(t, strings.Replace(sitrepPolicy, "name: utrecht-sitreps", "name: utrecht-sitreps-kort", 1)+"redact: [body.summary]\n")
	olga := newBrowser(t)
	e.signIn(t, olga, "officer-a", "/beleid")
	_, page := olga.get(t, e.url+"/beleid/voorstel")
	token := csrfOf(t, page)
	const lifted = "body.summary, nu voor %s achtergehouden door utrecht-sitreps-kort@1, zou worden verstuurd"
	resp, page := olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy}, "stap": {"voorbeeld"},
		"recipient": {"spiffe://ncc.crisis.test/node/r1"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="opgeheven-elders"`) ||
		!strings.Contains(page, strings.Replace(lifted, "%s", "spiffe://ncc.crisis.test/node/r1", 1)) {
		t.Errorf("the draft's preview does not warn that it lifts the summary's redaction: %d\n%s", resp.StatusCode, page)
	}
	resp, page = olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy}, "stap": {"voorstellen"}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/beleid/toon" {
		t.Fatalf("propose: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	const id = "utrecht-sitreps@1"
	_, confirm := olga.get(t, e.url+"/beleid/stap?stap=goedkeuren&id="+url.QueryEscape(id))
	if !strings.Contains(confirm, `id="kan-niet"><p class="utrecht-paragraph">U hebt dit beleid voorgesteld. Een andere beveiligingsfunctionaris moet het goedkeuren`) ||
		strings.Contains(confirm, `id="bevestigen"`) {
		t.Errorf("the author's approve page offers the approval the node refuses:\n%s", confirm)
	}
	// Sent all the same (an old tab): refused in Dutch, without the node's English.
	resp, page = olga.post(t, e.url+"/beleid/stap", url.Values{"csrf": {csrfOf(t, confirm)}, "stap": {"goedkeuren"}, "id": {id}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Dit mag niet: wie een beleid voorstelt, keurt het niet zelf goed.") ||
		strings.Contains(page, "the author cannot approve") {
		t.Errorf("the author's approval: %d, want 403 in Dutch alone:\n%s", resp.StatusCode, page)
	}
	daan := newBrowser(t)
	e.signIn(t, daan, "officer-b", "/beleid")
	_, confirm = daan.get(t, e.url+"/beleid/stap?stap=goedkeuren&id="+url.QueryEscape(id))
	if !strings.Contains(confirm, `id="opgeheven-elders"`) || !strings.Contains(confirm, strings.Replace(lifted, "%s", "ncc", 1)) ||
		!strings.Contains(confirm, `id="bevestigen"`) {
		t.Errorf("the approve page does not warn that approving lifts the summary's redaction:\n%s", confirm)
	}
}

// TestApprovalThatTakesBack: a new version that would no longer grant ncc the sitrep it
// receives now (ncc states another purpose than it accepts) says so on the other officer's
// approve page, naming the partner, how many records and the version it replaces; and the page
// does not say the policy starts sharing (review AE, AE1: it said so of an approval that
// retracted everything).
func TestApprovalThatTakesBack(t *testing.T) {
	e := startFederation(t)
	e.utrecht.Put(t, fedtest.Sitrep("terug-1", "oekraine", pb.Classification_PUBLIC, "Regionaal beeld"))
	e.utrecht.Approve(t, sitrepPolicy)
	olga := newBrowser(t)
	e.signIn(t, olga, "officer-a", "/beleid")
	_, page := olga.get(t, e.url+"/beleid/voorstel")
	resp, page := olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {csrfOf(t, page)}, "bron": {sitrepPolicy + "accept_purposes: [een ander doel]\n"}, "stap": {"voorstellen"}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/beleid/toon" {
		t.Fatalf("propose: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	daan := newBrowser(t)
	e.signIn(t, daan, "officer-b", "/beleid")
	_, confirm := daan.get(t, e.url+"/beleid/stap?stap=goedkeuren&id="+url.QueryEscape("utrecht-sitreps@2"))
	if !strings.Contains(confirm, `id="teruggetrokken"`) ||
		!strings.Contains(confirm, "ncc.crisis.test heeft nu 2 records onder utrecht-sitreps@1 die het onder deze versie niet meer zou krijgen") ||
		strings.Contains(confirm, "de genoemde partners ontvangen de records die eronder vallen") || !strings.Contains(confirm, "Daarmee gaat deze versie gelden in plaats van de versie ervoor") {
		t.Errorf("the approve page of a version that takes back what ncc receives:\n%s", confirm)
	}
	// The preview for ncc says so too, and which purpose it took ncc to state (review AE, AE2).
	_, page = daan.get(t, e.url+"/beleid/voorbeeld?id="+url.QueryEscape("utrecht-sitreps@2")+"&recipient=ncc.crisis.test")
	if !strings.Contains(page, `id="teruggetrokken"`) || !strings.Contains(page, `id="doel">Het knooppunt van deze partner gaf in zijn abonnement geen doel op`) || !strings.Contains(page, ">0 van 2 records") {
		t.Errorf("the preview of a version that takes back what ncc receives:\n%s", page)
	}
}

// TestClassificationsInDutch: the explain page says a record is above a policy's ceiling with the
// classifications in the words the other pages use, and so does the propose page's warning of a
// group granted secret records. The propose page's hint names every optional field.
func TestClassificationsInDutch(t *testing.T) {
	e := startFederation(t)
	e.utrecht.Approve(t, sitrepPolicy)
	e.utrecht.Put(t, fedtest.Sitrep("geheim-1", "oekraine", pb.Classification_CONFIDENTIAL, "Vertrouwelijk beeld"))
	olga := newBrowser(t)
	e.signIn(t, olga, "officer-a", "/beleid")
	_, page := olga.get(t, e.url+"/beleid/uitleg?record=geheim-1&recipient="+url.QueryEscape("spiffe://ncc.crisis.test/node/r1"))
	// It says which purpose it decided for (review AG, AG7): ncc's node states none.
	if !strings.Contains(page, "het gegeven is departementaal vertrouwelijk, boven het plafond intern") || !strings.Contains(page, `id="doel">`) {
		t.Errorf("explain of a record above the ceiling does not name the classifications in Dutch:\n%s", page)
	}
	_, page = olga.get(t, e.url+"/beleid/voorstel")
	// The hint names every field a policy may have, from the document's definition.
	if want := `id="bron-hint">Verplicht: name, purpose, recipients, kinds, max_classification. Niet verplicht: accept_purposes, when, redact, phases, valid_from, valid_until, statuses, exercises.</p>`; !strings.Contains(page, want) {
		t.Errorf("the propose page's hint does not name every field:\n%s\nwant %s", page, want)
	}
	secret := strings.NewReplacer("spiffe://ncc.crisis.test", "'group:rijk'", "max_classification: internal", "max_classification: secret").Replace(sitrepPolicy)
	_, page = olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {csrfOf(t, page)}, "bron": {secret}, "stap": {"controleren"}})
	if !strings.Contains(page, "krijgt gegevens tot en met stg. geheim: elke partner die later bij de groep komt ook") {
		t.Errorf("the propose page does not warn, in Dutch, of a group granted secret records:\n%s", page)
	}
}

// TestPolicyPageSaysWhatItWithholdsInVain: a policy that withholds the sitreps' summary from
// ncc, while another in force shares the sitreps with ncc whole, says on its page that ncc gets
// the summary all the same, and through which policy; its own withheld fields are called its
// own, not "never shared" (review W, M1). A new version of it names the version in force and
// what it changes, on its page and on its approve page (review W, M3).
func TestPolicyPageSaysWhatItWithholdsInVain(t *testing.T) {
	e := startFederation(t)
	e.utrecht.Approve(t, sitrepPolicy)
	short := strings.Replace(sitrepPolicy, "name: utrecht-sitreps", "name: utrecht-sitreps-kort", 1) + "redact: [body.summary]\n"
	e.utrecht.Approve(t, short)
	daan := newBrowser(t)
	e.signIn(t, daan, "officer-b", "/beleid")
	_, page := daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape("utrecht-sitreps-kort@1"))
	if !strings.Contains(page, `<dt>Houdt dit beleid achter (velden)</dt><dd>summary</dd>`) ||
		!strings.Contains(page, `id="toch-gedeeld"`) ||
		!strings.Contains(page, "ncc.crisis.test krijgt summary toch: utrecht-sitreps@1 deelt dezelfde records ook met deze partner, en houdt dat niet achter.") {
		t.Errorf("the policy page does not say that ncc gets the summary all the same:\n%s", page)
	}
	// Explain says what is withheld with every policy together: here nothing.
	if _, page := daan.get(t, e.url+"/beleid/uitleg?record=regio-1&recipient=ncc"); !strings.Contains(page, `id="achtergehouden">Achtergehouden, na al het beleid samen: niets: de partner krijgt elk veld</p>`) {
		t.Errorf("explain does not say that ncc gets every field:\n%s", page)
	}
	if _, page := daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape("utrecht-sitreps@1")); strings.Contains(page, `id="toch-gedeeld"`) {
		t.Errorf("a policy that withholds nothing says that what it withholds goes all the same:\n%s", page)
	}

	// A new version without the redaction, up to confidential.
	wider := strings.Replace(strings.Replace(short, "redact: [body.summary]\n", "", 1), "max_classification: internal", "max_classification: confidential", 1)
	if _, err := pb.NewPolicyServiceClient(e.utrecht.As(t, e.utrecht.Officers[0])).Propose(fedtest.Call(t), &pb.ProposeRequest{Source: []byte(wider)}); err != nil {
		t.Fatal(err)
	}
	const id = "utrecht-sitreps-kort@2"
	changes := []string{
		`id="vervangt"`, "Nieuwe versie van utrecht-sitreps-kort@1, dat nu geldt.",
		"<li>Tot en met rubricering: intern → departementaal vertrouwelijk</li>",
		"<li>Houdt dit beleid achter (velden): summary → geen: elk veld gaat mee</li>",
	}
	for _, path := range []string{"/beleid/toon?id=" + url.QueryEscape(id), "/beleid/stap?stap=goedkeuren&id=" + url.QueryEscape(id)} {
		_, page := daan.get(t, e.url+path)
		for _, want := range changes {
			if !strings.Contains(page, want) {
				t.Errorf("%s does not say %q:\n%s", path, want, page)
			}
		}
		if strings.Contains(page, "Met wie: ") {
			t.Errorf("%s names a change of recipients, which did not change", path)
		}
	}
}

// TestOlderProposalOffersNoApproval: of two proposed versions of one policy, the older offers no
// approval, which the node refuses (NEWER_PROPOSAL), and says which version waits, linked, on
// its page and on its approve page (review W, L2).
func TestOlderProposalOffersNoApproval(t *testing.T) {
	e := startFederation(t)
	officer := pb.NewPolicyServiceClient(e.utrecht.As(t, e.utrecht.Officers[0]))
	for _, src := range []string{sitrepPolicy, strings.Replace(sitrepPolicy, "internal", "public", 1)} {
		if _, err := officer.Propose(fedtest.Call(t), &pb.ProposeRequest{Source: []byte(src)}); err != nil {
			t.Fatal(err)
		}
	}
	daan := newBrowser(t)
	e.signIn(t, daan, "officer-b", "/beleid")
	const waits = "Er wacht een nieuwere versie van dit beleid op goedkeuring, utrecht-sitreps@2"
	_, page := daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape("utrecht-sitreps@1"))
	if !strings.Contains(page, `id="nieuwere-versie">`+waits) || !strings.Contains(page, `href="/beleid/toon?id=utrecht-sitreps%402"`) || strings.Contains(page, `id="goedkeuren"`) {
		t.Errorf("the older proposal's page offers the approval, or does not name the newer one:\n%s", page)
	}
	_, page = daan.get(t, e.url+"/beleid/stap?stap=goedkeuren&id="+url.QueryEscape("utrecht-sitreps@1"))
	if !strings.Contains(page, `id="kan-niet"><p class="utrecht-paragraph">`+waits) || strings.Contains(page, `id="bevestigen"`) {
		t.Errorf("the older proposal's approve page offers the approval:\n%s", page)
	}
	// Sent all the same (an old tab): refused, with the way back to the policy, not the picture.
	resp, page := daan.post(t, e.url+"/beleid/stap", url.Values{"csrf": {csrfOf(t, page)}, "stap": {"goedkeuren"}, "id": {"utrecht-sitreps@1"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, `<a class="utrecht-link" href="/beleid/toon?id=utrecht-sitreps%401" id="terug">Terug naar beleid utrecht-sitreps@1</a>`) {
		t.Errorf("the older proposal's approval sent anyway: %d, want 409 with a link back to the policy:\n%s", resp.StatusCode, page)
	}
	if _, page := daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape("utrecht-sitreps@2")); !strings.Contains(page, `id="goedkeuren"`) || strings.Contains(page, `id="nieuwere-versie"`) {
		t.Errorf("the newer proposal's page does not offer the approval:\n%s", page)
	}
}

// TestAuditLogNewestFirst: the audit page starts at the newest entries and pages to older and
// newer ones; an actor is found by the user name the pages show, a subject by its start, entries
// from a time on; and the entries the filters select download as CSV, oldest first, with their
// hashes (review W, M4).
func TestAuditLogNewestFirst(t *testing.T) {
	e := startFederation(t)
	e.utrecht.Approve(t, sitrepPolicy) // proposed by officer-a, approved by officer-b
	for i := range 105 {
		id := fmt.Sprintf("weg-%03d", i)
		e.utrecht.Put(t, fedtest.Sitrep(id, "oekraine", pb.Classification_INTERNAL, "Weg "+id))
		e.utrecht.Delete(t, id)
	}
	olga := newBrowser(t)
	e.signIn(t, olga, "officer-a", "/audit")
	seqs := func(page string) []int {
		var out []int
		for _, m := range regexp.MustCompile(`<tr class="utrecht-table__row" data-action="[^"]*">\s*<td class="utrecht-table__cell kp-num">(\d+)</td>`).FindAllStringSubmatch(page, -1) {
			n, _ := strconv.Atoi(m[1])
			out = append(out, n)
		}
		return out
	}
	link := func(page, id string) string {
		m := regexp.MustCompile(`href="([^"]*)" id="` + id + `"`).FindStringSubmatch(page)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	last, err := pb.NewAuditServiceClient(e.utrecht.Local(t)).List(fedtest.Call(t), &pb.ListAuditRequest{Newest: true, Limit: 1})
	if err != nil || len(last.Entries) != 1 {
		t.Fatal(err)
	}
	_, page := olga.get(t, e.url+"/audit")
	newest := seqs(page)
	if len(newest) != 100 || int64(newest[0]) < last.Entries[0].Seq || !slices.IsSortedFunc(newest, func(a, b int) int { return b - a }) ||
		!strings.Contains(page, fmt.Sprintf("Regels %d tot en met %d, de nieuwste eerst", newest[99], newest[0])) ||
		link(page, "ouder") == "" || link(page, "nieuwer") != "" {
		t.Fatalf("the audit page: %d entries %v…, want the newest 100, newest first, with a link to older ones:\n%s", len(newest), newest[:min(3, len(newest))], page)
	}
	_, page = olga.get(t, e.url+link(page, "ouder"))
	older := seqs(page)
	if len(older) == 0 || older[0] != newest[99]-1 || link(page, "nieuwer") == "" || link(page, "nieuwste") == "" {
		t.Errorf("the older page starts at %v, want %d, with links to newer and the newest:\n%s", older[:min(3, len(older))], newest[99]-1, page)
	}
	_, page = olga.get(t, e.url+link(page, "nieuwer"))
	if back := seqs(page); len(back) == 0 || back[len(back)-1] != newest[99] {
		t.Errorf("the newer page from the older one ends at %v, want %d", back, newest[99])
	}

	// The person by the name the pages show; the policy by the start of its id.
	_, page = olga.get(t, e.url+"/audit?actor=officer-b&subject=utrecht-sitreps")
	if n := len(seqs(page)); n != 1 || !strings.Contains(page, `data-action="policy.approve"`) {
		t.Errorf("officer-b's steps on utrecht-sitreps: %d entries, want the approval:\n%s", n, page)
	}
	if _, page = olga.get(t, e.url+"/audit?sinds=2099-01-01"); len(seqs(page)) != 0 {
		t.Errorf("entries since 2099: %v, want none", seqs(page))
	}
	if resp, page := olga.get(t, e.url+"/audit?sinds=gisteren"); resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="sinds-fout">Typ een datum`) {
		t.Errorf("a since that does not read: %d, want it said at the field:\n%s", resp.StatusCode, page)
	}

	resp, body := olga.get(t, e.url+"/audit.csv?action=record.delete")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || len(rows) != 106 {
		t.Fatalf("the CSV of the deletes: %d, %s, %d rows, %v; want the header and 105", resp.StatusCode, resp.Header.Get("Content-Type"), len(rows), err)
	}
	if !slices.Equal(rows[0], []string{"seq", "at", "action", "actor", "subject", "detail", "prev_hash", "hash"}) || rows[1][4] != "weg-000" || rows[105][4] != "weg-104" || len(rows[1][7]) != 64 {
		t.Errorf("the CSV's header and rows: %v, %v … %v; want the oldest first, with hashes", rows[0], rows[1], rows[105])
	}
}
