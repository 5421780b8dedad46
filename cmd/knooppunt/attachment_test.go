package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/record"
)

// TestCLIAttachment: record put --attach uploads a PDF and names it in the body, record
// attachment get saves it, identical, under the name asked for; a program named .pdf is refused
// with the node's reason and no record is written; a hash that is not one is refused before the
// node is asked.
func TestCLIAttachment(t *testing.T) {
	addr, dir := servedNode(t)
	pdf := attach.SimplePDF("Handreiking", []string{strings.Repeat("Tewerkstellingsvergunning en opvang. ", 3000)})
	src := filepath.Join(dir, "handreiking.pdf")
	if err := os.WriteFile(src, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	put := func(id, file string) result {
		return cli(t, nil, "", "record", "put", "--node", addr, "--id", id, "--kind", "guidance", "--crisis", "oekraine", "--region", "NL",
			"--classification", "public", "--body", `{"title":"Handreiking opvang","text":"zie bijlage"}`, "--attach", file)
	}
	if r := put("gids-1", src).want(t, 0); r.stdout != "gids-1 version 1\n" {
		t.Fatalf("put --attach printed %q", r.stdout)
	}
	var rec struct {
		Body struct {
			Title       string              `json:"title"`
			Attachments []record.Attachment `json:"attachments"`
		} `json:"body"`
	}
	cli(t, nil, "", "record", "get", "gids-1", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &rec)
	if len(rec.Body.Attachments) != 1 || rec.Body.Title != "Handreiking opvang" {
		t.Fatalf("the record's body: %+v", rec.Body)
	}
	a := rec.Body.Attachments[0]
	if a.Filename != "handreiking.pdf" || a.MediaType != attach.PDF || a.Size != int64(len(pdf)) {
		t.Fatalf("attachment %+v", a)
	}
	out := filepath.Join(dir, "terug.pdf")
	r := cli(t, nil, "", "record", "attachment", "get", "gids-1", a.SHA256, "--node", addr, "-o", out).want(t, 0)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, pdf) {
		t.Fatalf("the saved file differs from the upload (%v); stderr:\n%s", err, r.stderr)
	}

	elf := filepath.Join(dir, "rapport.pdf")
	if err := os.WriteFile(elf, append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 100)...), 0o600); err != nil {
		t.Fatal(err)
	}
	r = put("gids-2", elf).want(t, 1)
	if !strings.Contains(r.stderr, "--attach "+elf+": data: the content is an executable program") || !strings.Contains(r.stderr, "(InvalidArgument)") {
		t.Fatalf("a program named .pdf: stderr %q", r.stderr)
	}
	cli(t, nil, "", "record", "get", "gids-2", "--node", addr).want(t, 1)
	r = cli(t, nil, "", "record", "attachment", "get", "gids-1", "abc", "--node", addr, "-o", out).want(t, 1)
	if !strings.Contains(r.stderr, "SHA256: \"abc\" is not a SHA-256") {
		t.Fatalf("a bad hash: stderr %q", r.stderr)
	}
}

// TestCLIAttachmentModesAndNames: record attachment get reads in one mode, as record get does:
// an exercise record's file is NOT_FOUND without --exercise and saved with it (review 22 M4);
// put --attach refuses a script by its name, naming the field (M2).
func TestCLIAttachmentModesAndNames(t *testing.T) {
	addr, dir := servedNode(t)
	src := filepath.Join(dir, "terug.txt")
	text := []byte("OEFENING: fictieve evacuatie van Zeeland\n")
	if err := os.WriteFile(src, text, 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, nil, "", "exercise", "start", "oefening-zeeland", "--node", addr).want(t, 0)
	cli(t, nil, "", "record", "put", "--node", addr, "--id", "oef-1", "--exercise", "oefening-zeeland", "--kind", "guidance", "--crisis", "oekraine", "--region", "NL",
		"--classification", "public", "--body", `{"title":"Oefening","text":"zie bijlage"}`, "--attach", src).want(t, 0)
	var rec struct {
		Body struct {
			Attachments []record.Attachment `json:"attachments"`
		} `json:"body"`
	}
	cli(t, nil, "", "record", "get", "oef-1", "--exercise", "oefening-zeeland", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &rec)
	if len(rec.Body.Attachments) != 1 {
		t.Fatalf("the exercise record's attachments: %+v", rec.Body.Attachments)
	}
	sha := rec.Body.Attachments[0].SHA256
	out := filepath.Join(dir, "uit.txt")
	r := cli(t, nil, "", "record", "attachment", "get", "oef-1", sha, "--node", addr, "-o", out).want(t, 1)
	if !strings.Contains(r.stderr, "record_id: there is no record oef-1 in this mode: `record list` shows the node's records (with --exercise NAME for an exercise's)") || !strings.Contains(r.stderr, "(NotFound)") {
		t.Errorf("the exercise's file without --exercise: stderr %q; want NotFound", r.stderr)
	}
	// A record that is none, and a file the record does not name, are told apart.
	r = cli(t, nil, "", "record", "attachment", "get", "geen-record", sha, "--node", addr, "-o", out).want(t, 1)
	if !strings.Contains(r.stderr, "there is no record geen-record in this mode") {
		t.Errorf("the file of a record that is none: stderr %q", r.stderr)
	}
	other := strings.Repeat("0", len(sha))
	r = cli(t, nil, "", "record", "attachment", "get", "oef-1", other, "--exercise", "oefening-zeeland", "--node", addr, "-o", out).want(t, 1)
	if !strings.Contains(r.stderr, "record oef-1 names no file "+other) {
		t.Errorf("a file the record does not name: stderr %q", r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the exercise's file was saved without --exercise (%v)", err)
	}
	cli(t, nil, "", "record", "attachment", "get", "oef-1", sha, "--exercise", "oefening-zeeland", "--node", addr, "-o", out).want(t, 0)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, text) {
		t.Errorf("the exercise's file with --exercise: %q, %v", got, err)
	}

	bat := filepath.Join(dir, "instructies.bat")
	if err := os.WriteFile(bat, []byte("echo hallo\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(t, nil, "", "record", "put", "--node", addr, "--id", "s1", "--kind", "guidance", "--crisis", "oekraine", "--region", "NL",
		"--classification", "public", "--body", `{"title":"Script","text":"zie bijlage"}`, "--attach", bat).want(t, 1)
	if !strings.Contains(r.stderr, `filename: the name "instructies.bat" ends in .bat, a program or active content`) {
		t.Errorf("put --attach instructies.bat: stderr %q", r.stderr)
	}
}
