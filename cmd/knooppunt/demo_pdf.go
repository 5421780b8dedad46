package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/knooppunt/knooppunt/node/attach"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The demo's handreiking: GGD GHOR shares a guidance record with a small PDF, which the demo
// makes itself. Partners fetch the file under GGD GHOR's policy, and a text search finds words
// that only the PDF holds.
const (
	handreikingID = "guidance-ggd-handreiking"
	// demoPDFText is a word that only the PDF holds.
	demoPDFText = "infectieziektebestrijding"
)

// handreikingPDF is the demo's guidance document.
func handreikingPDF() []byte {
	return attach.SimplePDF("Handreiking publieke gezondheid bij de opvang van ontheemden uit Oekraïne", []string{
		"GGD GHOR Nederland, versie 1.2. Demo data: deze handreiking is voor de demonstratie geschreven.",
		"1. Doel. Deze handreiking ondersteunt gemeenten en veiligheidsregio's bij de publieke gezondheidszorg in en rond opvanglocaties voor ontheemden.",
		"2. Infectieziektebestrijding. Meld een uitbraak of een vermoeden daarvan direct bij de GGD in de opvanggemeente. Zorg voor voldoende sanitaire voorzieningen, ventilatie en ruimte om zieken apart te leggen. Bied vaccinaties aan volgens het Rijksvaccinatieprogramma.",
		"3. Tbc-screening. Ontheemden uit Oekraïne krijgen binnen drie maanden na aankomst een tbc-screening aangeboden. De GGD plant deze in overleg met de locatiebeheerder.",
		"4. Psychosociale hulp. Signaleer stress en trauma vroeg en verwijs naar de huisarts of de GGD. Zorg voor tolken waar nodig.",
		"5. Contact. De GGD in de opvanggemeente is het eerste aanspreekpunt; de GHOR coördineert in de veiligheidsregio.",
	})
}

// shareHandreiking has GGD GHOR upload the PDF and put a guidance record that names it.
func shareHandreiking(ctx context.Context, ggd *demoOrg) (*pb.Attachment, error) {
	f := ggd.local()
	conn, err := f.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pdf := handreikingPDF()
	att, err := attach.Upload(ctx, pb.NewAttachmentServiceClient(conn), "handreiking-publieke-gezondheid.pdf", bytes.NewReader(pdf), int64(len(pdf)), "", nil)
	if err != nil {
		return nil, fmt.Errorf("ggdghor: upload the handreiking: %w", callError(f, err))
	}
	body, _ := json.Marshal(map[string]any{
		"title":       "Handreiking publieke gezondheid opvang ontheemden",
		"text":        "De handreiking van GGD GHOR voor gemeenten en regio's; zie de bijlage. Demo data.",
		"attachments": []*pb.Attachment{att},
	})
	_, err = pb.NewRecordServiceClient(conn).Put(ctx, &pb.PutRequest{Record: &pb.Record{
		Id: handreikingID, Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body}})
	if err != nil {
		return nil, fmt.Errorf("ggdghor: put the handreiking: %w", callError(f, err))
	}
	return att, nil
}

// showHandreiking waits, bounded, until o fetched GGD GHOR's PDF and a text search from o finds
// the word only the PDF holds, and prints both.
func showHandreiking(ctx context.Context, out io.Writer, o *demoOrg, att *pb.Attachment) error {
	f := o.local()
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	id := "ggdghor.crisis.test/" + handreikingID
	var resp *pb.SearchResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := attach.Download(ctx, pb.NewAttachmentServiceClient(conn), id, att.Sha256, nil, io.Discard, nil)
		if err == nil {
			resp, err = pb.NewSearchServiceClient(conn).Search(ctx, &pb.SearchRequest{Filter: &pb.Filter{Text: demoPDFText}, TimeoutMs: 5000})
		}
		if err == nil && len(resp.Hits) > 0 {
			break
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("no hits")
			}
			return fmt.Errorf("%s did not fetch and find GGD GHOR's handreiking within 30s: %w", o.title, callError(f, err))
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\n=== knooppunt search --text %s, from %s (a word only the PDF holds) ===\n", demoPDFText, o.title)
	if err := printSearch(out, "table", resp, nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s holds GGD GHOR's PDF (%d bytes, %s), fetched under GGD GHOR's policy:\n  knooppunt record attachment get %s %s -o handreiking.pdf\n",
		o.title, att.Size, att.MediaType, id, att.Sha256)
	return nil
}
