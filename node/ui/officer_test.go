package ui_test

// The officers' pages over HTTP, against real nodes: policies proposed, approved, refused and
// revoked through the forms, as the node's services decide them.

import (
	"context"
	"encoding/json"
	"html"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// sitrepPolicy shares vr-utrecht's sitreps with ncc.
const sitrepPolicy = "name: utrecht-sitreps\npurpose: regionaal beeld voor het NCC\nrecipients: [spiffe://ncc.crisis.test]\n" +
	"kinds: [sitrep]\nmax_classification: internal\n"

// step opens a step's confirmation page and confirms it with the page's own form.
func step(t *testing.T, b *browser, base, stap, id string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, page := b.get(t, base+"/beleid/stap?stap="+stap+"&id="+url.QueryEscape(id))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="gevolgen"`) {
		t.Fatalf("the confirmation page of %s %s: %d\n%s", stap, id, resp.StatusCode, page)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", csrfOf(t, page))
	form.Set("stap", stap)
	form.Set("id", id)
	return b.post(t, base+"/beleid/stap", form)
}

// TestOfficersProposeAndApprove: one officer proposes a policy through the form (after the
// linter refused a bad one, which stored nothing), cannot approve it herself, not from a
// second browser either; the other officer approves it and it becomes active; a revoke needs a
// reason; every step is in the audit log, whose chain verifies.
func TestOfficersProposeAndApprove(t *testing.T) {
	e := startFederation(t)
	olga := newBrowser(t)
	if resp, page := e.signIn(t, olga, "officer-a", "/beleid"); resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="voorstellen"`) {
		t.Fatalf("the policy list for an officer: %d\n%s", resp.StatusCode, page)
	}
	_, page := olga.get(t, e.url+"/beleid/voorstel")
	token := csrfOf(t, page)

	// A recipient that is not a peer: the linter's message is shown next to the field, and
	// nothing is stored.
	bad := strings.Replace(sitrepPolicy, "spiffe://ncc.crisis.test", "spiffe://defensie.crisis.test", 1)
	resp, page := olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {bad}, "stap": {"voorstellen"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="problemen"`) ||
		!strings.Contains(page, "recipients[0]") || !strings.Contains(page, "defensie.crisis.test") ||
		!strings.Contains(page, `aria-describedby="bron-hint bron-fout" aria-invalid="true"`) {
		t.Fatalf("a policy that does not lint: %d, want 422 with the linter's message at the field:\n%s", resp.StatusCode, page)
	}
	if _, list := olga.get(t, e.url+"/beleid"); strings.Contains(list, "utrecht-sitreps") {
		t.Fatal("a policy that did not lint was stored")
	} else if !strings.Contains(list, `<tr class="utrecht-table__row" data-partner="ncc">`) || !strings.Contains(list, `id="partners">Partners en hun groepen`) {
		t.Errorf("the policies page does not list the partners a policy can name:\n%s", list)
	}
	resp, page = olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {""}, "stap": {"voorstellen"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Beleid: het veld is leeg") {
		t.Errorf("an empty policy: %d\n%s", resp.StatusCode, page)
	}
	// Check only: clean, and not stored.
	resp, page = olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy}, "stap": {"controleren"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="schoon"`) {
		t.Fatalf("check of a good policy: %d\n%s", resp.StatusCode, page)
	}
	// Preview the draft for ncc: the sitrep would go; nothing is stored.
	resp, page = olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy}, "stap": {"voorbeeld"},
		"recipient": {"spiffe://ncc.crisis.test/node/r1"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "1 van 1 records zouden naar deze partner gaan") || !strings.Contains(page, "Regionaal beeld VR Utrecht") {
		t.Errorf("preview of the draft for ncc: %d\n%s", resp.StatusCode, page)
	}
	// Kinds by their names for people, as on every other page.
	if !strings.Contains(page, "<li>Situatierapport: 1</li>") || !strings.Contains(page, `<td class="utrecht-table__cell" role="cell" data-label="Soort">Situatierapport</td>`) {
		t.Errorf("the preview does not name the kind Situatierapport:\n%s", outcome(t, page))
	}
	if strings.Contains(page, `id="niet-gevonden"`) {
		t.Errorf("a policy that redacts nothing warns of a redaction that withholds nothing:\n%s", page)
	}
	// A redaction of a field no record has (misspelt) is named: nothing is withheld under it.
	_, page = olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy + "redact: [body.sumary]\n"}, "stap": {"voorbeeld"},
		"recipient": {"spiffe://ncc.crisis.test/node/r1"}})
	if !strings.Contains(page, `id="niet-gevonden"><p class="utrecht-paragraph">Geen gegeven dat dit beleid deelt heeft body.sumary`) {
		t.Errorf("preview of a draft that redacts a field no record has does not warn:\n%s", page)
	}
	resp, page = olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy}, "stap": {"voorbeeld"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, `id="recipient-fout">Ontvanger: het veld is leeg`) {
		t.Errorf("preview of the draft without a recipient: %d\n%s", resp.StatusCode, page)
	}
	if _, list := olga.get(t, e.url+"/beleid"); strings.Contains(list, "utrecht-sitreps") {
		t.Fatal("a check or a preview stored the policy")
	}
	resp, page = olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy}, "stap": {"voorstellen"}})
	const id = "utrecht-sitreps@1"
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/beleid/toon" || !strings.Contains(page, `data-state="proposed"`) ||
		!strings.Contains(page, `id="auteur"><span class="kp-person" title="spiffe://vr-utrecht.crisis.test/user/officer-a">officer-a</span><`) || !strings.Contains(page, `id="eigen-voorstel"`) {
		t.Fatalf("propose: %d at %s, want the proposed policy's page:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	if strings.Contains(page, `id="goedkeuren"`) {
		t.Error("the author is offered to approve her own policy")
	}
	// The same document again makes no new version, and says so at the form, naming the one
	// that waits (review AC, AC1: it said the officer had approved it).
	resp, again := olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy}, "stap": {"voorstellen"}})
	if resp.StatusCode != http.StatusConflict || resp.Request.URL.Path != "/beleid/voorstel" ||
		!strings.Contains(again, "Dit is hetzelfde document als "+id+", dat al op goedkeuring wacht: er is geen nieuwe versie gemaakt.") ||
		strings.Contains(again, "goedgekeurd. Het wacht") || !strings.Contains(again, `id="fouten"`) {
		t.Errorf("the same document proposed again: %d at %s\n%s", resp.StatusCode, resp.Request.URL, outcome(t, again))
	}
	// What the policy shares, in words, before its YAML.
	summary := regexp.MustCompile(`(?s)<dl class="kp-fields" id="samenvatting".*?</dl>`).FindString(page)
	for _, want := range []string{"<dt>Met wie</dt><dd>ncc (ncc.crisis.test)</dd>", "<dd>Situatierapport</dd>", "<dd><strong>intern</strong></dd>",
		"geen: elk veld gaat mee", "<dd>in elke fase</dd>", "alleen echte records, nooit die van een oefening"} {
		if !strings.Contains(summary, want) {
			t.Errorf("the policy's summary lacks %q:\n%s", want, summary)
		}
	}

	// The author cannot approve: the service refuses, and the page says why. A second
	// browser session of the same person is the same person.
	for i, b := range []*browser{olga, newBrowser(t)} {
		if i == 1 {
			e.signIn(t, b, "officer-a", "/beleid")
		}
		resp, page = step(t, b, e.url, "goedkeuren", id, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Dit mag niet: wie een beleid voorstelt, keurt het niet zelf goed.") || strings.Contains(page, "the author cannot approve") {
			t.Errorf("session %d: the author's approve: %d, want 403 with the four-eyes refusal:\n%s", i+1, resp.StatusCode, page)
		}
	}

	// The other officer's sign-in is old: the approve page sends him to sign in again first,
	// and back to the page.
	daan := newBrowser(t)
	e.op.signInLongAgo(time.Hour)
	e.signIn(t, daan, "officer-b", "/beleid")
	r, err := noRedirects(daan.Jar).Get(e.url + "/beleid/stap?stap=goedkeuren&id=" + url.QueryEscape(id))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if loc := r.Header.Get("Location"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/aanmelden?opnieuw=1&terug=") {
		t.Fatalf("approve with an old sign-in: %d to %q, want to sign in again", r.StatusCode, loc)
	}
	_, page = daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape(id))
	// The approval sent with the old sign-in: he signs in anew and is back at its confirmation,
	// and nothing was approved meanwhile.
	resp, page = daan.post(t, e.url+"/beleid/stap", url.Values{"csrf": {csrfOf(t, page)}, "stap": {"goedkeuren"}, "id": {id}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/beleid/stap" || !strings.Contains(page, `id="bevestigen"`) {
		t.Fatalf("a POST with an old sign-in: %d at %s, want its confirmation after signing in anew:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	if _, shown := daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape(id)); strings.Contains(shown, `data-state="approved"`) {
		t.Fatal("the approval sent with an old sign-in was taken without being confirmed again")
	}
	// The approve page says all the policy page says of what it shares, with the previews per
	// partner (review W, M2).
	if _, confirm := daan.get(t, e.url+"/beleid/stap?stap=goedkeuren&id="+url.QueryEscape(id)); !regexp.MustCompile(`(?s)id="samenvatting".*<dd>ncc \(ncc.crisis.test\)</dd>.*<dd>Situatierapport</dd>.*<dd><strong>intern</strong></dd>.*<dd><span class="kp-muted">geen: elk veld gaat mee</span></dd>.*<dd>in elke fase</dd>.*<dd>alleen echte records, nooit die van een oefening</dd>`).MatchString(confirm) ||
		!regexp.MustCompile(`id="voorbeelden">Bekijk precies wat een partner krijgt: [^\n]*<a class="utrecht-link" href="/beleid/voorbeeld\?id=`+regexp.QuoteMeta(url.QueryEscape(id))+`&amp;recipient=ncc">ncc.crisis.test</a>`).MatchString(confirm) {
		t.Errorf("the approve confirmation does not say what the policy shares:\n%s", confirm)
	}
	resp, page = step(t, daan, e.url, "goedkeuren", id, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `data-state="approved"`) || !strings.Contains(page, "actief") ||
		!strings.Contains(page, `<li><span class="kp-person" title="spiffe://vr-utrecht.crisis.test/user/officer-b">officer-b</span></li>`) {
		t.Fatalf("the other officer's approve: %d, want the policy approved and active:\n%s", resp.StatusCode, page)
	}
	// The step taken is the title's first word, which a screen reader reads as the page opens;
	// the policy's page without a step just taken says nothing of it.
	if !strings.Contains(page, "<title>Gedaan: Beleid "+id+" · ") {
		t.Errorf("after the approve the title does not start Gedaan:\n%s", page)
	}
	if _, shown := daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape(id)); !strings.Contains(shown, "<title>Beleid "+id+" · ") {
		t.Errorf("the policy's own page is not titled Beleid %s:\n%s", id, shown)
	}

	// Preview to ncc: vr-utrecht's sitrep goes; to lcvs nothing; an unknown recipient is an
	// error at the field.
	_, page = daan.get(t, e.url+"/beleid/voorbeeld?id="+url.QueryEscape(id)+"&recipient="+url.QueryEscape("spiffe://ncc.crisis.test/node/r1"))
	if !strings.Contains(page, "1 van 1 records zouden naar deze partner gaan") || !strings.Contains(page, "Regionaal beeld VR Utrecht") {
		t.Errorf("preview to ncc: want the one sitrep:\n%s", page)
	}
	resp, page = daan.get(t, e.url+"/beleid/voorbeeld?id="+url.QueryEscape(id)+"&recipient=nobody")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, `id="recipient-fout">recipient:`) {
		t.Errorf("preview to a bad recipient: %d\n%s", resp.StatusCode, page)
	}
	_, page = daan.get(t, e.url+"/beleid/uitleg?record=regio-1&recipient="+url.QueryEscape("spiffe://ncc.crisis.test/node/r1"))
	if !strings.Contains(page, `id="uitkomst">wordt gedeeld`) || !strings.Contains(page, id) {
		t.Errorf("explain regio-1 to ncc: want shared under %s:\n%s", id, page)
	}
	// Why, in Dutch: the policy shares; for a peer it does not name, it does not name it.
	if !strings.Contains(page, `<td class="utrecht-table__cell">deelt</td>`) {
		t.Errorf("explain regio-1 to ncc does not say, in Dutch, why:\n%s", page)
	}
	_, page = daan.get(t, e.url+"/beleid/uitleg?record=regio-1&recipient="+url.QueryEscape("spiffe://lcvs.crisis.test/node/r1"))
	if !strings.Contains(page, `<td class="utrecht-table__cell">noemt deze ontvanger niet</td>`) {
		t.Errorf("explain regio-1 to lcvs does not say, in Dutch, why not:\n%s", page)
	}
	// And what the partner holds: lcvs nothing; ncc the record once its subscription brought it.
	if !strings.Contains(page, `id="kopie">De partner heeft geen kopie.</p>`) {
		t.Errorf("explain regio-1 to lcvs does not say it holds no copy:\n%s", page)
	}
	fedtest.Eventually(t, 10*time.Second, "explain says ncc holds regio-1", func() (bool, string) {
		_, page = daan.get(t, e.url+"/beleid/uitleg?record=regio-1&recipient="+url.QueryEscape("spiffe://ncc.crisis.test/node/r1"))
		return strings.Contains(page, `id="kopie">De partner heeft versie 1, gestuurd onder `+id+` op `), page
	})

	// Approving it again, or revoking what is not approved, is said at once.
	resp, page = daan.get(t, e.url+"/beleid/stap?stap=goedkeuren&id="+url.QueryEscape(id))
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "Goedkeuren kan niet: het beleid is goedgekeurd.") {
		t.Errorf("approve an approved policy: %d\n%s", resp.StatusCode, page)
	}
	// Revoke needs a reason: without one, the field says so and nothing changes.
	resp, page = step(t, daan, e.url, "intrekken", id, url.Values{"reden": {"  "}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, `id="reden-fout"`) {
		t.Fatalf("revoke without a reason: %d\n%s", resp.StatusCode, page)
	}
	if _, page = daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape(id)); !strings.Contains(page, `data-state="approved"`) {
		t.Fatal("a refused revoke changed the policy")
	}
	// A revoke sent with an old sign-in comes back, after a new one, as its confirmation with
	// the reason that was typed, and nothing is revoked meanwhile.
	late := newBrowser(t)
	e.op.signInLongAgo(time.Hour)
	_, shown := e.signIn(t, late, "officer-b", "/beleid/toon?id="+url.QueryEscape(id))
	resp, page = late.post(t, e.url+"/beleid/stap", url.Values{"csrf": {csrfOf(t, shown)}, "stap": {"intrekken"}, "id": {id}, "reden": {"oefening afgelopen"}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/beleid/stap" || !strings.Contains(page, `id="hersteld"`) || !strings.Contains(page, ">oefening afgelopen</textarea>") {
		t.Fatalf("a revoke sent with an old sign-in: %d at %s, want its confirmation with the reason:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	// The confirmation says what the revoke withdraws: ncc holds regio-1 under this policy alone.
	if !strings.Contains(page, "Records die partners nu onder dit beleid hebben: ") || !strings.Contains(page, ": 1, waarvan 1 alleen door dit beleid (die worden teruggetrokken).") {
		t.Errorf("the revoke's confirmation does not say what partners hold under the policy:\n%s", page)
	}
	if _, page = daan.get(t, e.url+"/beleid/toon?id="+url.QueryEscape(id)); !strings.Contains(page, `data-state="approved"`) {
		t.Fatal("the revoke sent with an old sign-in was taken without being confirmed again")
	}
	resp, page = step(t, daan, e.url, "intrekken", id, url.Values{"reden": {"oefening afgelopen"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `data-state="revoked"`) || !strings.Contains(page, "oefening afgelopen") {
		t.Fatalf("revoke: %d\n%s", resp.StatusCode, page)
	}

	// The audit log holds each step under its officer, and its chain verifies.
	_, page = olga.get(t, e.url+"/audit?action=policy.&subject="+url.QueryEscape(id))
	// Identifiers may break after their slashes and dots; a detail reads as its fields.
	if !strings.Contains(page, "spiffe:/<wbr>/<wbr>vr-utrecht.<wbr>crisis.<wbr>test/<wbr>user/<wbr>officer-a") {
		t.Error("the audit log's actors do not break at their slashes and dots")
	}
	page = strings.ReplaceAll(page, "<wbr>", "")
	for _, want := range []string{`data-action="policy.propose"`, `data-action="policy.approve"`, `data-action="policy.revoke"`, "user/officer-b",
		"<div><dt>kinds</dt><dd>sitrep</dd></div>", "<div><dt>recipients</dt><dd>spiffe://ncc.crisis.test</dd></div>",
		// Each action in words, with its code; the filter offers them so too.
		`Beleid goedgekeurd<br><code class="kp-muted">policy.approve</code>`, `<option value="policy." selected>Alle beleidsstappen · policy.</option>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the audit log lacks %q", want)
		}
	}
	_, page = olga.get(t, e.url+"/audit?controle=1")
	if !strings.Contains(page, `id="controle"`) || !strings.Contains(page, "intact") || !strings.Contains(page, `id="kop"`) {
		t.Errorf("verify: want the chain intact with its head:\n%s", page)
	}
	_, page = olga.get(t, e.url+"/audit?controle=1&anker_seq=1&anker_hash=zz")
	if !strings.Contains(page, "de hash moet 64 hexadecimale tekens zijn") {
		t.Errorf("verify against a bad anchor: want the field's error:\n%s", page)
	}
}

// TestReaderSeesNoOfficerPages: readers and editors are offered none of the officers' pages;
// a reader who forges an officer's form gets 403, and the refusal is in the audit log.
func TestReaderSeesNoOfficerPages(t *testing.T) {
	e := start(t)
	for _, name := range []string{"bram", "eva"} {
		b := newBrowser(t)
		_, page := e.signIn(t, b, name, "/")
		for _, link := range []string{`href="/beleid"`, `href="/fase"`, `href="/audit"`} {
			if strings.Contains(page, link) {
				t.Errorf("%s is offered %s", name, link)
			}
		}
		if resp, _ := b.get(t, e.url+"/beleid"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s opens the policy list: %d, want 403", name, resp.StatusCode)
		}
		if resp, _ := b.get(t, e.url+"/audit"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s opens the audit log: %d, want 403", name, resp.StatusCode)
		}
		for _, path := range []string{"/beleid/voorstel", "/beleid/stap?stap=goedkeuren&id=x%401"} {
			if resp, body := b.get(t, e.url+path); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "voor de beveiligingsfunctionarissen") || strings.Contains(body, `id="bevestigen"`) {
				t.Errorf("%s opens %s: %d, want 403 without the form:\n%s", name, path, resp.StatusCode, body)
			}
		}
		token := csrfOf(t, page)
		for path, form := range map[string]url.Values{
			"/beleid/stap":     {"csrf": {token}, "stap": {"goedkeuren"}, "id": {"x@1"}},
			"/beleid/voorstel": {"csrf": {token}, "bron": {"name: x\n"}, "stap": {"voorstellen"}},
			"/fase/wijzigen":   {"csrf": {token}, "crisis": {"oekraine"}, "phase": {"warm"}, "reden": {"test"}},
			"/fase/bevestigen": {"csrf": {token}, "crisis": {"oekraine"}, "phase": {"warm"}, "reden": {"test"}},
		} {
			resp, body := b.post(t, e.url+path, form)
			if resp.StatusCode != http.StatusForbidden || strings.Contains(body, `id="bevestigen"`) {
				t.Errorf("%s forges POST %s: %d, want 403:\n%s", name, path, resp.StatusCode, body)
			}
		}
	}
	anna := newBrowser(t)
	e.signIn(t, anna, "anna", "/")
	if _, page := anna.get(t, e.url+"/fase"); strings.Contains(page, "oekraine") {
		t.Fatal("a forged phase change was applied")
	}
	fedtest.Eventually(t, 10*time.Second, "the audit log holds bram's refused approve", func() (bool, string) {
		_, page := anna.get(t, e.url+"/audit?action=access.denied&actor="+url.QueryEscape("spiffe://"+testOrg+"/user/bram"))
		page = strings.ReplaceAll(page, "<wbr>", "")
		ok := strings.Contains(page, "/knooppunt.v1.PolicyService/Approve") && strings.Contains(page, "/knooppunt.v1.PhaseService/Set")
		return ok, page
	})
}

// TestOfficerFormsNeedCSRF: a step's form without its CSRF token is refused and changes
// nothing, even from an officer with a recent sign-in.
func TestOfficerFormsNeedCSRF(t *testing.T) {
	e := start(t)
	b := newBrowser(t)
	e.signIn(t, b, "anna", "/fase")
	for path, form := range map[string]url.Values{
		"/fase/wijzigen":   {"crisis": {"oekraine"}, "phase": {"warm"}, "reden": {"test"}},
		"/beleid/voorstel": {"bron": {"name: x\n"}, "stap": {"voorstellen"}},
		"/beleid/stap":     {"stap": {"goedkeuren"}, "id": {"x@1"}},
	} {
		resp, body := b.post(t, e.url+path, form)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "niet van deze pagina") {
			t.Errorf("POST %s without a CSRF token: %d, want 403:\n%s", path, resp.StatusCode, body)
		}
	}
	if _, page := b.get(t, e.url+"/fase"); strings.Contains(page, "oekraine") {
		t.Error("a phase change without a CSRF token was applied")
	}
}

// TestLargeForms: a policy of 45,000 bytes, under the service's own limit, is read whole (its
// form is some 80 KB once encoded) and checked, not refused as a form without its token; a form
// larger than the node takes is refused as too large, saying its limit.
func TestLargeForms(t *testing.T) {
	e := start(t)
	anna := newBrowser(t)
	_, page := e.signIn(t, anna, "anna", "/beleid/voorstel")
	token := csrfOf(t, page)
	long := "name: x\npurpose: p\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n" + strings.Repeat("# een lange toelichting, met komma's & tekens\n", 1000)
	resp, body := anna.post(t, e.url+"/beleid/controle", url.Values{"csrf": {token}, "bron": {long}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"field":"recipients[0]"`) {
		t.Errorf("lint of a policy of %d bytes: %d, want it checked:\n%.600s", len(long), resp.StatusCode, body)
	}
	resp, body = anna.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {strings.Repeat("x", 4<<20)}, "stap": {"voorstellen"}})
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "groter dan dit knooppunt aanneemt (3,2 MB): maak de inhoud korter.") || !strings.Contains(body, "Afmelden") {
		t.Errorf("a form of 4 MiB: %d, want 413 saying the limit, with the menu of a signed-in person:\n%s", resp.StatusCode, body)
	}
}

// TestStaleSignInSignsInAgain: an officer whose sign-in is older than 10 minutes is sent to
// sign in again before a step's page, and lands back on it. A form she sends with an old sign-in
// (a policy she took long to write) is not lost: she signs in again and is back at the form,
// with what she wrote in it, and nothing was done meanwhile.
func TestStaleSignInSignsInAgain(t *testing.T) {
	e := start(t)
	b := newBrowser(t)
	e.op.signInLongAgo(11 * time.Minute)
	_, page := e.signIn(t, b, "anna", "/fase")
	token := csrfOf(t, page)
	r, err := noRedirects(b.Jar).Get(e.url + "/beleid/voorstel")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if want := "/aanmelden?opnieuw=1&terug=%2Fbeleid%2Fvoorstel"; r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != want {
		t.Fatalf("an old sign-in opens the propose page: %d to %q, want 303 to %q", r.StatusCode, r.Header.Get("Location"), want)
	}
	src := "name: lang-geschreven\npurpose: test <&>\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n"
	resp, body := b.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {src}, "recipient": {"spiffe://ncc.crisis.test/node/r1"}, "stap": {"voorstellen"}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/beleid/voorstel" || !strings.Contains(body, `id="hersteld"`) ||
		!strings.Contains(body, "purpose: test &lt;&amp;&gt;") || !strings.Contains(body, `value="spiffe://ncc.crisis.test/node/r1"`) {
		t.Fatalf("a policy sent with an old sign-in: %d at %s, want the form again with what was written:\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	if _, list := b.get(t, e.url+"/beleid"); strings.Contains(list, "lang-geschreven") {
		t.Error("the policy sent with an old sign-in was proposed without being sent again")
	}
	// Shown once: the form opened again starts anew.
	if _, again := b.get(t, e.url+"/beleid/voorstel"); strings.Contains(again, "lang-geschreven") || strings.Contains(again, `id="hersteld"`) {
		t.Error("the draft is shown a second time")
	}
	// Someone else who signs in in that browser gets nothing of her draft; nor does she, after.
	b = newBrowser(t)
	e.op.signInLongAgo(11 * time.Minute)
	_, page = e.signIn(t, b, "anna", "/fase")
	e.op.signInAs("eva")
	resp, body = b.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {csrfOf(t, page)}, "bron": {src}, "stap": {"voorstellen"}})
	if strings.Contains(body, "lang-geschreven") || strings.Contains(body, `id="hersteld"`) {
		t.Errorf("anna's draft was shown to eva, who signed in after her in the same browser:\n%s", body)
	}
	e.op.signInAs("anna")
	if _, again := b.get(t, e.url+"/aanmelden?opnieuw=1&terug=%2Fbeleid%2Fvoorstel"); strings.Contains(again, "lang-geschreven") {
		t.Error("the draft another person's sign-in passed over was shown later")
	}
	// A reader's form sent with an old sign-in is refused, as the step would be, and keeps nothing.
	b = newBrowser(t)
	e.op.signInLongAgo(11 * time.Minute)
	_, page = e.signIn(t, b, "bram", "/")
	resp, body = b.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {csrfOf(t, page)}, "bron": {src}, "stap": {"voorstellen"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "ouder dan 10 minuten") {
		t.Errorf("a reader's form with an old sign-in: %d, want 403:\n%s", resp.StatusCode, body)
	}

	// A phase change sent with an old sign-in, at the form or at its confirmation, comes back as
	// its form filled in, to be confirmed again (a browser of its own: hers has signed in anew);
	// the reason is in the page, not in its address.
	for _, path := range []string{"/fase/bevestigen", "/fase/wijzigen"} {
		b = newBrowser(t)
		e.op.signInLongAgo(11 * time.Minute)
		_, page = e.signIn(t, b, "anna", "/fase")
		token = csrfOf(t, page)
		resp, body = b.post(t, e.url+path, url.Values{"csrf": {token}, "crisis": {"oekraine"}, "phase": {"warm"}, "reden": {"instroom verdubbeld"}})
		if resp.StatusCode != http.StatusOK || resp.Request.URL.RequestURI() != "/fase?crisis=oekraine&phase=warm" || !strings.Contains(body, `id="hersteld"`) ||
			!strings.Contains(body, `<option value="warm" selected>`) || !strings.Contains(body, ">instroom verdubbeld</textarea>") {
			t.Errorf("%s with an old sign-in: %d at %s, want its form again as filled in:\n%s", path, resp.StatusCode, resp.Request.URL, body)
		}
	}
	if _, list := b.get(t, e.url+"/fase"); strings.Contains(list, "kp-phase--warm") {
		t.Error("the phase changed without being confirmed again")
	}
}

// TestSetPhase: a phase change checks its fields, says what will happen, and then happens,
// under the officer's name.
func TestSetPhase(t *testing.T) {
	e := start(t)
	if _, err := e.records(t).Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "sitrep-1", Kind: "sitrep", Crisis: "oekraine",
		Region: "VR09", Classification: pb.Classification_PUBLIC, Body: []byte(`{"title":"Beeld","summary":"Rustig.","severity":"low"}`)}}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	_, list := e.signIn(t, b, "anna", "/fase")
	// The form is sent with POST, its CSRF token with it: the reason, which goes to the audit
	// log, is in no address, browser history or proxy log (review AB).
	if !strings.Contains(list, `<form method="post" action="/fase/bevestigen"`) || !strings.Contains(list, `name="csrf" value="`+csrfOf(t, list)+`"`) {
		t.Errorf("the phase form is not sent with POST and its CSRF token:\n%s", list)
	}
	confirm := func(q string) (*http.Response, string) {
		t.Helper()
		form, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		form.Set("csrf", csrfOf(t, list))
		return b.post(t, e.url+"/fase/bevestigen", form)
	}
	// The crisis a record names is listed, cold and never set, and offered in the form.
	if !strings.Contains(list, `data-crisis="oekraine"`) || !strings.Contains(list, "nooit gezet") || !strings.Contains(list, `<datalist id="bekende-crises"><option value="oekraine"></option></datalist>`) {
		t.Errorf("the phases page does not list or offer the crisis that a record names:\n%s", list)
	}
	// A crisis no record names and no phase was set for: probably a typo, and the officer is told.
	if _, page := confirm("crisis=oekriane&phase=warm&reden=test"); !strings.Contains(page, `id="twijfel"`) || !strings.Contains(page, "Controleer de spelling") {
		t.Errorf("the confirmation of a phase for an unknown crisis does not warn:\n%s", page)
	}
	for q, want := range map[string]string{
		"crisis=&phase=warm&reden=test": "Crisis: het veld is leeg",
		"crisis=oekraine&phase=hot":     "Fase: kies koud, lauw of warm",
		"crisis=oekraine&phase=warm":    "Reden: zeg waarom de fase verandert",
	} {
		resp, page := confirm(q)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, want) || !strings.Contains(page, `aria-invalid="true"`) {
			t.Errorf("%s: %d, want 400 with %q at the field:\n%s", q, resp.StatusCode, want, page)
		}
	}
	// Each wrong field is named at the top of the form too, linked to it (review W, L4); a
	// reason over the limit is said at its field.
	resp, page := confirm("crisis=&phase=heet&reden=" + strings.Repeat("x", 2001))
	if !regexp.MustCompile(`(?s)id="fouten"[^>]*>.*De fase is niet gewijzigd.*<li><a class="utrecht-link" href="#crisis">Crisis: het veld is leeg[^<]*</a></li><li><a class="utrecht-link" href="#phase">Fase: kies koud, lauw of warm.</a></li><li><a class="utrecht-link" href="#reden">[^<]*2000[^<]*</a></li>\s*</ul>`).MatchString(page) ||
		!strings.Contains(page, `id="reden-fout"`) || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("three wrong fields: %d, want them summed up at the top:\n%s", resp.StatusCode, page)
	}
	// approve proposes and approves a policy named name with the source given.
	approve := func(name, source string) {
		t.Helper()
		for _, st := range []*pb.PolicyStep{
			{Action: db.StepPropose, Officer: "spiffe://" + testOrg + "/user/officer-a", Source: []byte(source)},
			{Action: db.StepApprove, Officer: "spiffe://" + testOrg + "/user/officer-b", PolicyId: name + "@1"},
		} {
			st.At, st.ApprovalsRequired = timestamppb.Now(), 1
			if _, err := e.node.Store().Apply(context.Background(), &pb.Command{Cmd: &pb.Command_PolicyStep{PolicyStep: st}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A break-glass policy for warm, approved in advance: the confirmation says it starts sharing.
	approve("breekglas", "name: breekglas\npurpose: opschaling\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\nphases: [warm]\n")
	// Not for a crisis no record names: no record of it can go.
	if _, page := confirm("crisis=oekriane&phase=warm&reden=test"); strings.Contains(page, "te delen") || !strings.Contains(page, `id="twijfel"`) {
		t.Errorf("the confirmation of warm for an unknown crisis says a policy starts sharing, or does not warn:\n%s", page)
	}
	resp, page = confirm("crisis=oekraine&phase=warm&reden=instroom+verdubbeld")
	if u := resp.Request.URL.String(); u != e.url+"/fase/bevestigen" || resp.Request.Method != http.MethodPost {
		t.Errorf("the confirmation is at %s %s, want POST /fase/bevestigen, its reason in no address", resp.Request.Method, u)
	}
	if !strings.Contains(page, "Begint records van oekraine te delen (beleid voor deze fase): breekglas@1.") {
		t.Errorf("the confirmation does not name the break-glass policy that warm switches on:\n%s", page)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Crisis oekraine gaat van koud naar warm.") || strings.Contains(page, `id="twijfel"`) {
		t.Fatalf("the confirmation: %d\n%s", resp.StatusCode, page)
	}
	form := url.Values{"csrf": {csrfOf(t, page)}, "crisis": {"oekraine"}, "phase": {"warm"}, "reden": {"instroom verdubbeld"}}
	resp, page = b.post(t, e.url+"/fase/wijzigen", form)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="gedaan"`) || !strings.Contains(page, "spiffe://"+testOrg+"/user/anna") ||
		!strings.Contains(page, `kp-phase--warm">warm`) || !strings.Contains(page, "<title>Gedaan: Crisisfase · ") {
		t.Fatalf("set the phase: %d at %s, want it done and said in the title\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	// A break-glass limited by its condition to oekraine shares nothing of hoogwater: warming
	// hoogwater names only the one that covers its sitrep, and cooling oekraine says that one
	// still shares what is warm (review L, L1: both were named, and "stops" read as closed).
	approve("breekglas-oekraine", "name: breekglas-oekraine\npurpose: opschaling\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\nphases: [warm]\nwhen: record.crisis == \"oekraine\"\n")
	if _, err := e.records(t).Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "sitrep-hw", Kind: "sitrep", Crisis: "hoogwater",
		Region: "VR09", Classification: pb.Classification_PUBLIC, Body: []byte(`{"title":"Hoogwater","summary":"Stijgt.","severity":"low"}`)}}); err != nil {
		t.Fatal(err)
	}
	_, page = confirm("crisis=hoogwater&phase=warm&reden=opschaling")
	if !strings.Contains(page, "Begint records van hoogwater te delen (beleid voor deze fase): breekglas@1.") {
		t.Errorf("the confirmation of warm for hoogwater does not name the policy that covers its sitrep, or names the one for oekraine:\n%s", page)
	}
	if resp, page := b.post(t, e.url+"/fase/wijzigen", url.Values{"csrf": {csrfOf(t, page)}, "crisis": {"hoogwater"}, "phase": {"warm"}, "reden": {"opschaling"}}); resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="gedaan"`) {
		t.Fatalf("set hoogwater warm: %d\n%s", resp.StatusCode, page)
	}
	_, page = confirm("crisis=oekraine&phase=cold&reden=afgeschaald")
	if !strings.Contains(page, "Stopt met het delen van records van oekraine (beleid voor de vorige fase): breekglas@1, breekglas-oekraine@1.") ||
		!strings.Contains(page, "Dat beleid deelt nog wel records van de crises die warm zijn: hoogwater.") {
		t.Errorf("the confirmation of cold for oekraine does not name what stops, or that it still shares hoogwater:\n%s", page)
	}
	if resp, page := b.post(t, e.url+"/fase/wijzigen", url.Values{"csrf": {csrfOf(t, page)}, "crisis": {"oekraine"}, "phase": {"cold"}, "reden": {"afgeschaald"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("set oekraine cold: %d\n%s", resp.StatusCode, page)
	}
	// Active is what grants: the break-glass for oekraine, now cold, is not, though hoogwater
	// is warm (review L, L2: it was listed as active).
	pols, err := pb.NewPolicyServiceClient(e.local(t)).List(context.Background(), &pb.ListPoliciesRequest{State: "approved"})
	if err != nil {
		t.Fatal(err)
	}
	active := map[string]bool{}
	for _, p := range pols.Policies {
		active[p.Id] = p.Active
	}
	if !active["breekglas@1"] || active["breekglas-oekraine@1"] {
		t.Errorf("active with hoogwater warm and oekraine cold: %v, want breekglas@1 alone", active)
	}
	// The address the form had when it was sent with GET, from a bookmark or the history, opens
	// the form filled in with its crisis and phase; a reason in it is not taken.
	if resp, page := b.get(t, e.url+"/fase/wijzigen?crisis=oekraine&phase=warm&reden=geheim+van+gisteren"); resp.Request.URL.RequestURI() != "/fase?crisis=oekraine&phase=warm" ||
		!strings.Contains(page, `<option value="warm" selected>`) || !strings.Contains(page, `id="crisis" name="crisis" value="oekraine"`) || strings.Contains(page, "geheim") {
		t.Errorf("the phase form's old address: at %s, want the form with oekraine and warm and no reason:\n%s", resp.Request.URL, page)
	}
	// The notice is for a crisis that has its phase; an address cannot make the page say
	// anything else was done.
	if _, page := b.get(t, e.url+"/fase?gedaan="+url.QueryEscape("oekraine naar heet door de minister")); strings.Contains(page, `id="gedaan"`) || strings.Contains(page, "<title>Gedaan:") {
		t.Errorf("the phases page says a made-up step was done:\n%s", page)
	}
}

// TestLintAsYouType: the propose form's script asks /beleid/controle, which answers the
// linter's problems as JSON in the person's language, stores nothing, and needs the CSRF token
// and a role that may lint.
func TestLintAsYouType(t *testing.T) {
	e := start(t)
	anna := newBrowser(t)
	_, page := e.signIn(t, anna, "anna", "/beleid/voorstel")
	token := csrfOf(t, page)
	if !strings.Contains(page, `<script src="/assets/lint-as-you-type.js" defer></script>`) || !strings.Contains(page, `id="bron-samenvatting" role="status"`) {
		t.Fatalf("the propose form does not load the script or has no live region:\n%s", page)
	}
	resp, body := anna.post(t, e.url+"/beleid/controle", url.Values{"csrf": {token}, "bron": {"name: x\npurpose: p\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n"}})
	var res struct {
		Clean    bool
		Summary  string
		Problems []struct{ Where, Field, Message string }
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("lint: %d %s %v\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), err, body)
	}
	// This node has no peers, so ncc is not a recipient it knows. The message is Dutch, as the
	// page is; in English, it is the node's own.
	if res.Clean || res.Summary != "Beleid: de controle vond een probleem. Los het op en controleer opnieuw; er is niets opgeslagen." ||
		len(res.Problems) != 1 || res.Problems[0].Field != "recipients[0]" || res.Problems[0].Where != "regel 3, kolom 14:" ||
		res.Problems[0].Message != `onbekende partner "spiffe://ncc.crisis.test": het is geen partner van dit knooppunt (zie Partners en hun groepen op de pagina Beleid)` {
		t.Errorf("lint: %+v", res)
	}
	// A redaction of a field no kind declares, which the open sitrep might carry: a warning, in
	// Dutch, beside the problem.
	_, body = anna.post(t, e.url+"/beleid/controle", url.Values{"csrf": {token}, "bron": {"name: x\npurpose: p\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\nredact: [body.telefon]\n"}})
	var warned struct {
		Problems, Doubts []struct{ Where, Field, Message string }
	}
	if err := json.Unmarshal([]byte(body), &warned); err != nil || len(warned.Problems) != 1 || len(warned.Doubts) != 1 || warned.Doubts[0].Field != "redact[0]" ||
		!strings.HasPrefix(warned.Doubts[0].Message, `body.telefon: geen soort die dit beleid deelt kent een veld "telefon"`) {
		t.Errorf("lint of an undeclared redaction: %v %+v", err, warned)
	}
	anna.get(t, e.url+"/taal?lang=en&terug=/beleid/voorstel")
	_, body = anna.post(t, e.url+"/beleid/controle", url.Values{"csrf": {token}, "bron": {"name: x\npurpose: p\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n"}})
	if err := json.Unmarshal([]byte(body), &res); err != nil || len(res.Problems) != 1 ||
		res.Problems[0].Message != `unknown peer "spiffe://ncc.crisis.test": it is not one of the node's peers (peer list shows them)` {
		t.Errorf("lint in English: %v %+v", err, res)
	}
	anna.get(t, e.url+"/taal?lang=nl&terug=/beleid/voorstel")
	if _, list := anna.get(t, e.url+"/beleid"); !strings.Contains(list, "Er is geen beleid met deze status.") {
		t.Error("linting stored a policy")
	}
	if resp, _ := anna.post(t, e.url+"/beleid/controle", url.Values{"bron": {"name: x\n"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("lint without a CSRF token: %d, want 403", resp.StatusCode)
	}
	bram := newBrowser(t)
	_, page = e.signIn(t, bram, "bram", "/")
	if resp, _ := bram.post(t, e.url+"/beleid/controle", url.Values{"csrf": {csrfOf(t, page)}, "bron": {"name: x\n"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a reader lints: %d, want 403", resp.StatusCode)
	}
}

// partnerOptions are the suggestions of a page's recipient field, value to label, and whether
// the field asks for them.
func partnerOptions(t *testing.T, page string) (map[string]string, bool) {
	t.Helper()
	field := regexp.MustCompile(`<input [^>]*id="recipient"[^>]*>`).FindString(page)
	list := regexp.MustCompile(`(?s)<datalist id="recipient-partners">(.*?)</datalist>`).FindStringSubmatch(page)
	if list == nil {
		return nil, strings.Contains(field, `list="recipient-partners"`)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`<option value="([^"]*)">([^<]*)</option>`).FindAllStringSubmatch(list[1], -1) {
		out[html.UnescapeString(m[1])] = html.UnescapeString(m[2])
	}
	return out, strings.Contains(field, `list="recipient-partners"`)
}

// outcome is what a preview or explain page answers, from its heading on: the same for two
// recipients that get the same verdicts.
func outcome(t *testing.T, page string) string {
	t.Helper()
	from, to := strings.Index(page, `id="uitkomst"`), strings.Index(page, "</main>")
	if from < 0 || to < from {
		t.Fatalf("the page has no outcome:\n%s", page)
	}
	return page[from:to]
}

// TestRecipientSuggestions: the recipient fields of a policy's page, the preview, explain and
// the propose form suggest vr-utrecht's two peers by their names. The name suggested for ncc gets
// the same preview and the same explanation as the ID the field's hint shows, for a policy that
// names the org ncc.
func TestRecipientSuggestions(t *testing.T) {
	e := startFederation(t)
	id := e.utrecht.Approve(t, sitrepPolicy)
	olga := newBrowser(t)
	_, page := e.signIn(t, olga, "officer-a", "/beleid/voorstel")
	token := csrfOf(t, page)
	want := map[string]string{"lcvs": "lcvs.crisis.test", "ncc": "ncc.crisis.test"}
	pages := map[string]string{"propose": page}
	for name, path := range map[string]string{"policy": "/beleid/toon?id=" + url.QueryEscape(id), "preview": "/beleid/voorbeeld?id=" + url.QueryEscape(id), "explain": "/beleid/uitleg"} {
		resp, page := olga.get(t, e.url+path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d\n%s", name, resp.StatusCode, page)
		}
		pages[name] = page
	}
	// The propose form shown again, after a preview of the draft, still suggests them.
	resp, page := olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {sitrepPolicy}, "stap": {"voorbeeld"}, "recipient": {"spiffe://ncc.crisis.test/node/r1"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview of the draft: %d\n%s", resp.StatusCode, page)
	}
	pages["propose, previewed"] = page
	for name, page := range pages {
		got, listed := partnerOptions(t, page)
		if !listed || !maps.Equal(got, want) {
			t.Errorf("%s: the recipient field suggests %v (list attribute %v), want %v", name, got, listed, want)
		}
	}

	// The hint's example and the suggestion for ncc: the same records go, and the same verdicts
	// explain regio-1, as the policy names the whole org.
	hint := regexp.MustCompile(`id="recipient-hint">[^<]*(spiffe://ncc\.crisis\.test/\S+?)\.?<`).FindStringSubmatch(pages["preview"])
	var suggested string
	for value, label := range want {
		if label == "ncc.crisis.test" {
			suggested = value
		}
	}
	if hint == nil || suggested == "" {
		t.Fatalf("no hint with ncc's ID (%v) or no suggestion for ncc (%q)", hint, suggested)
	}
	var previews, explains []string
	for _, to := range []string{hint[1], suggested} {
		_, page := olga.get(t, e.url+"/beleid/voorbeeld?"+url.Values{"id": {id}, "recipient": {to}}.Encode())
		previews = append(previews, outcome(t, page))
		_, page = olga.get(t, e.url+"/beleid/uitleg?"+url.Values{"record": {"regio-1"}, "recipient": {to}}.Encode())
		explains = append(explains, outcome(t, page))
	}
	if !strings.Contains(previews[0], "1 van 1 records zouden naar deze partner gaan") || previews[1] != previews[0] {
		t.Errorf("preview for %s and for the suggested %s differ:\n%s\n---\n%s", hint[1], suggested, previews[0], previews[1])
	}
	if !strings.Contains(explains[0], `id="uitkomst">wordt gedeeld`) || !strings.Contains(explains[0], id) || explains[1] != explains[0] {
		t.Errorf("explain for %s and for the suggested %s differ:\n%s\n---\n%s", hint[1], suggested, explains[0], explains[1])
	}
}

// TestStepRefusalsInDutch: a step the node refuses for a reason it names (here: approving an
// older proposal while a newer version waits) is said on the Dutch page in Dutch alone, not as
// the node's English inside a Dutch sentence.
func TestStepRefusalsInDutch(t *testing.T) {
	e := startFederation(t)
	olga := newBrowser(t)
	e.signIn(t, olga, "officer-a", "/beleid")
	_, page := olga.get(t, e.url+"/beleid/voorstel")
	token := csrfOf(t, page)
	for _, src := range []string{sitrepPolicy, sitrepPolicy + "redact: [body.summary]\n"} {
		if resp, page := olga.post(t, e.url+"/beleid/voorstel", url.Values{"csrf": {token}, "bron": {src}, "stap": {"voorstellen"}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("propose: %d\n%s", resp.StatusCode, page)
		}
	}
	daan := newBrowser(t)
	e.signIn(t, daan, "officer-b", "/beleid")
	resp, page := step(t, daan, e.url, "goedkeuren", "utrecht-sitreps@1", nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "er wacht een nieuwere versie van dit beleid op goedkeuring") || strings.Contains(page, "newer proposal") {
		t.Errorf("approving @1 while @2 waits: %d, want 409 in Dutch alone:\n%s", resp.StatusCode, page)
	}
}
