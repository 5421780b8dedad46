package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCLIWebhook: webhook add shows the secret once (table and JSON), list shows the webhook
// without it and counts the delivery of a record put after it, a refused URL names what to fix,
// a webhook up to public gets no internal record, and remove takes it away.
func TestCLIWebhook(t *testing.T) {
	addr, _ := servedNode(t)
	got := make(chan string, 4)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + lis.Addr().String() + "/hook"

	if r := cli(t, nil, "", "webhook", "add", "--node", addr, "--url", "http://hooks.example.nl/x").want(t, 1); !strings.HasPrefix(r.stderr, "knooppunt: --url: ") || !strings.Contains(r.stderr, "use https") {
		t.Errorf("webhook add of a plain-http URL: %q", r.stderr)
	}
	r := cli(t, nil, "", "webhook", "add", "--node", addr, "--url", url, "--kinds", "shelter.capacity").want(t, 0)
	if !strings.Contains(r.stdout, "signing secret (shown once") || !strings.Contains(r.stdout, "whsec_") {
		t.Fatalf("webhook add: %q", r.stdout)
	}
	// A webhook of an exercise this node never started would deliver nothing, ever.
	if r := cli(t, nil, "", "webhook", "add", "--node", addr, "--url", url, "--exercise", "oefening-1").want(t, 1); !strings.Contains(r.stderr, `exercise: no exercise "oefening-1" on this node: start it first`) {
		t.Errorf("webhook add of an exercise never started: %q", r.stderr)
	}
	cli(t, nil, "", "exercise", "start", "oefening-1", "--node", addr).want(t, 0)
	var added webhookJSON
	cli(t, nil, "", "webhook", "add", "--node", addr, "--url", url, "--exercise", "oefening-1", "-o", "json").want(t, 0).oneJSON(t, &added)
	if !strings.HasPrefix(added.Secret, "whsec_") || added.Exercise != "oefening-1" {
		t.Fatalf("webhook add -o json: %+v", added)
	}
	if r := cli(t, nil, "", "webhook", "add", "--node", addr, "--url", url, "--max-classification", "geheimer").want(t, 1); !strings.Contains(r.stderr, "--max-classification: ") {
		t.Errorf("webhook add with a classification that is none: %q", r.stderr)
	}
	if r := cli(t, nil, "", "webhook", "add", "--node", addr, "--url", url, "--region", "VR09,Utrecht").want(t, 1); !strings.Contains(r.stderr, `--region: "Utrecht" is not a region`) {
		t.Errorf("webhook add with a region that is none: %q", r.stderr)
	}
	var public webhookJSON
	cli(t, nil, "", "webhook", "add", "--node", addr, "--url", url+"/public", "--max-classification", "public", "--region", "VR19", "--kind", "shelter.capacity", "-o", "json").want(t, 0).oneJSON(t, &public)
	// --kind as every other command names kinds (review Z, Z7).
	if public.MaxClass != "public" || fmt.Sprint(public.Regions) != "[VR19]" || fmt.Sprint(public.Kinds) != "[shelter.capacity]" {
		t.Fatalf("webhook add --max-classification public -o json: %+v", public)
	}
	cli(t, nil, "", "record", "put", "--node", addr, "--kind", "shelter.capacity", "--crisis", "oekraine", "--region", "VR19",
		"--classification", "internal", "--body", `{"municipality":"Middelburg","beds_total":200,"beds_free":6}`).want(t, 0)
	select {
	case body := <-got:
		if !strings.Contains(body, `"Middelburg"`) {
			t.Fatalf("delivered %s", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook brought nothing")
	}
	var hooks []webhookJSON
	deadline := time.Now().Add(10 * time.Second)
	for {
		hooks = nil
		cli(t, nil, "", "webhook", "list", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &hooks)
		if len(hooks) == 3 && (hooks[0].Delivered+hooks[1].Delivered+hooks[2].Delivered) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(hooks) != 3 || hooks[0].Secret != "" || hooks[1].Secret != "" || hooks[2].Secret != "" || hooks[0].Delivered+hooks[1].Delivered+hooks[2].Delivered != 1 {
		t.Fatalf("webhook list: %+v: want three, no secret, one delivery", hooks)
	}
	for _, h := range hooks {
		if h.ID == public.ID && (h.Delivered != 0 || h.Queued != 0) {
			t.Errorf("the webhook up to public: %+v, want nothing of an internal record", h)
		}
	}
	if r := cli(t, nil, "", "webhook", "list", "--node", addr).want(t, 0); !strings.Contains(r.stdout, "exercise oefening-1") || strings.Contains(r.stdout, "whsec_") ||
		!strings.Contains(r.stdout, "UP TO") || !strings.Contains(r.stdout, " public ") {
		t.Errorf("webhook list:\n%s", r.stdout)
	}
	cli(t, nil, "", "webhook", "failures", "--node", addr, "-o", "json").want(t, 0)
	// A new secret, shown once; the old one signs too for the overlap, which list then says.
	if r := cli(t, nil, "", "webhook", "rotate", added.ID, "--node", addr, "--overlap", "2h").want(t, 0); !strings.Contains(r.stdout, "has a new signing secret (shown once, give it to the receiver): whsec_") ||
		!strings.Contains(r.stdout, "Deliveries are signed with the old secret too until ") {
		t.Errorf("webhook rotate:\n%s", r.stdout)
	}
	if r := cli(t, nil, "", "webhook", "list", "--node", addr).want(t, 0); !strings.Contains(r.stdout, added.ID+": signed with the secret before the last rotation too, until ") || strings.Contains(r.stdout, "whsec_") {
		t.Errorf("webhook list after a rotation:\n%s", r.stdout)
	}
	var rotated struct {
		Secret         string     `json:"secret"`
		OldSecretUntil *time.Time `json:"old_secret_until"`
	}
	cli(t, nil, "", "webhook", "rotate", added.ID, "--node", addr, "--overlap", "0", "-o", "json").want(t, 0).oneJSON(t, &rotated)
	if !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.OldSecretUntil != nil {
		t.Errorf("webhook rotate --overlap 0 -o json: %+v, want a secret and no old one signing", rotated)
	}
	if r := cli(t, nil, "", "webhook", "rotate", added.ID, "--node", addr, "--overlap", "800h").want(t, 1); !strings.Contains(r.stderr, "--overlap: 800h0m0s: give 0") {
		t.Errorf("webhook rotate --overlap 800h: %q", r.stderr)
	}
	cli(t, nil, "", "webhook", "remove", added.ID, "--node", addr).want(t, 0)
	if r := cli(t, nil, "", "webhook", "remove", added.ID, "--node", addr).want(t, 1); !strings.Contains(r.stderr, "no webhook") {
		t.Errorf("webhook remove twice: %q", r.stderr)
	}
}
