package ui

import (
	"encoding/json"
	"net/url"
	"time"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// alertView is an alert in force on the picture: what a crisis staffer must see first.
type alertView struct {
	Title, Detail string
	// Severity is CAP's (Extreme, Severe, Moderate, Minor, Unknown); SeverityClass its tag.
	Severity, SeverityClass     string
	Region, Source, Since, Link string
	at                          time.Time
}

// alertFields is an alert record's body: a CAP 1.2 alert under its CAP names, and for an alert
// an early-warning rule wrote, the rule, its state and when it fired.
type alertFields struct {
	cap.Alert
	Rule    string    `json:"rule"`
	State   string    `json:"state"`
	FiredAt time.Time `json:"fired_at"`
}

// activeAlert reads an alert record of the picture, and reports whether it is in force at now:
// a rule's alert while it fires; an imported CAP alert unless it was cancelled, is past, or
// expired.
func activeAlert(l *Lang, e *pb.PictureEntry, now time.Time, back string) (alertView, bool) {
	var b alertFields
	if e.Kind != record.AlertKind || e.Record == nil || json.Unmarshal(e.Record.Body, &b) != nil || len(b.Info) == 0 {
		return alertView{}, false
	}
	in := b.Info[0]
	v := alertView{Severity: in.Severity, Region: e.Region, Source: e.Source, Link: recordLink(e.Record) + "&" + url.Values{"terug": {back}}.Encode()}
	switch {
	case b.Rule != "":
		if b.State != "firing" {
			return alertView{}, false
		}
		v.Title, v.Detail, v.at = l.T("alerts.rule", b.Rule, l.Region(e.Region)), in.Description, b.FiredAt
	default:
		if b.MsgType == "Cancel" || in.Urgency == "Past" {
			return alertView{}, false
		}
		if exp, err := time.Parse(cap.TimeLayout, in.Expires); err == nil && !exp.After(now) {
			return alertView{}, false
		}
		v.Title, v.Detail = in.Headline, in.Description
		if v.Title == "" {
			v.Title = in.Event
		}
		v.at, _ = time.Parse(cap.TimeLayout, b.Sent)
	}
	switch v.Severity {
	case "Extreme", "Severe":
		v.SeverityClass = "kp-tag--bad"
	case "Moderate":
		v.SeverityClass = "kp-tag--warn"
	default:
		v.SeverityClass = "kp-tag--info"
	}
	if v.Severity == "" {
		v.Severity = "Unknown"
	}
	if !v.at.IsZero() {
		v.Since = age(l, int64(now.Sub(v.at)/time.Second))
	}
	return v, true
}
