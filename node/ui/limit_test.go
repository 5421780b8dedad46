package ui

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSearchLimitPerPerson: a person's searches beyond askBurst in a moment are refused with 429,
// Retry-After and a page that says to wait, logged once; another person searches on. Reloading a
// picture is never refused and asks the partners only while half the limit is left, showing
// their last answer after that, so that it leaves the searches their half.
func TestSearchLimitPerPerson(t *testing.T) {
	var logs bytes.Buffer
	conn := &countingConn{}
	s, _ := limitServer(t, conn, &logs)
	now := time.Unix(1_800_000_000, 0)
	s.limits.now = func() time.Time { return now }
	get := func(cookie *http.Cookie, path string, header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(cookie)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	anna, bram := signIn(s, "anna"), signIn(s, "bram")
	const picture = "/?crisis=oekraine"
	for i := range 2 * askBurst {
		if w := get(anna, picture); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "b.crisis.test") {
			t.Fatalf("anna's picture, load %d: %d, want 200 and the partner shown", i+1, w.Code)
		}
	}
	if n := conn.checked.Load(); n != askBurst-pictureReserve {
		t.Errorf("%d loads of the picture asked the partners %d times, want %d", 2*askBurst, n, askBurst-pictureReserve)
	}
	for i := range pictureReserve {
		if w := get(anna, "/zoeken?q=opvang"); w.Code != http.StatusOK {
			t.Fatalf("anna's search %d: %d, want 200", i+1, w.Code)
		}
	}
	for range 2 {
		w := get(anna, "/zoeken?q=opvang")
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "Wacht even") {
			t.Errorf("anna's search %d: %d, Retry-After %q; want 429, 1 and a page that says to wait:\n%s", pictureReserve+1, w.Code, w.Header().Get("Retry-After"), w.Body.String())
		}
	}
	if n := conn.searches.Load(); n != pictureReserve {
		t.Errorf("%d searches reached the partners, want %d", n, pictureReserve)
	}
	if n := strings.Count(logs.String(), "level=INFO msg=\"pages that ask the partners refused"); n != 1 {
		t.Errorf("%d refusals logged, want 1:\n%s", n, logs.String())
	}
	if w := get(bram, "/zoeken?q=opvang"); w.Code != http.StatusOK {
		t.Errorf("bram's search: %d, want 200", w.Code)
	}
	// A search of the own organisation asks no partner; with words it counts all the same, as
	// its work on the index may be costly (review S, S2), and without it does not.
	if w := get(anna, "/zoeken?q=opvang&org=a.crisis.test"); w.Code != http.StatusTooManyRequests {
		t.Errorf("anna's search with words of her own organisation over the limit: %d, want 429", w.Code)
	}
	if w := get(anna, "/zoeken?kind=qa&org=a.crisis.test"); w.Code != http.StatusOK {
		t.Errorf("anna's search without words of her own organisation over the limit: %d, want 200", w.Code)
	}
	// Over the limit, the picture still loads, by hand and by the live picture's script, with
	// the partners' last answer; a picture not opened before is refused.
	asked := conn.checked.Load()
	for _, header := range [][]string{nil, {liveReloadHeader, liveChange}, {liveReloadHeader, "klok"}} {
		if w := get(anna, picture, header...); w.Code != http.StatusOK || conn.checked.Load() != asked || !strings.Contains(w.Body.String(), "b.crisis.test") {
			t.Errorf("anna's picture %v over the limit: %d, asked the partners %d more times; want 200, none and the partner shown", header, w.Code, conn.checked.Load()-asked)
		}
	}
	if w := get(anna, picture+"&exercise=oef-1"); w.Code != http.StatusTooManyRequests {
		t.Errorf("anna's first picture of an exercise over the limit: %d, want 429", w.Code)
	}
	// A second later one more search may go.
	now = now.Add(time.Second)
	if w := get(anna, "/zoeken?q=opvang"); w.Code != http.StatusOK {
		t.Errorf("anna's search a second later: %d, want 200", w.Code)
	}
	// A change announced half a minute after the partners were asked asks them again; the next
	// change right after does not.
	now = now.Add(liveAsk)
	for _, want := range []int64{asked + 1, asked + 1} {
		if w := get(anna, picture, liveReloadHeader, liveChange); w.Code != http.StatusOK || conn.checked.Load() != want {
			t.Errorf("anna's picture reloading itself for a change: %d, asked the partners %d times; want 200 and %d", w.Code, conn.checked.Load(), want)
		}
	}
}
