package ui

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// alertView is an alert in force on the picture: what a crisis staffer must see first; or one
// that ended within clearedShown, with when (Ended).
type alertView struct {
	Title, Detail string
	// Severity is CAP's (Extreme, Severe, Moderate, Minor, Unknown); SeverityClass its tag.
	Severity, SeverityClass     string
	Region, Source, Since, Link string
	// Key is the alert's id on the page, of its source and record: the live picture tells by
	// it an alert that came from those it showed, and says the new one (review AB, AB3).
	Key string
	// Ended says when an alert that is no longer in force ended, and how: cleared (its rule
	// resolved, or CAP Cancel or Past) or expired; "" for one in force.
	Ended string
	at    time.Time
}

// Said is what the live picture says when the alert comes: its title and region, the region
// once when the title names it already, as a rule's alert does (review AB, AB3).
func (v alertView) Said(l *Lang) string {
	if region := l.Region(v.Region); region != "" && !strings.Contains(v.Title, region) {
		return l.T("alerts.new", v.Title, region)
	}
	return l.T("alerts.new_titled", v.Title)
}

// clearedShown is how long the picture shows an alert that ended, under the alerts in force: a
// shift's length, so that one who looked away sees that it cleared, and when, rather than an
// alert that is simply gone (review T, T1).
const clearedShown = 12 * time.Hour

// maxCleared bounds the ended alerts the picture lists, newest first; search lists them all.
const maxCleared = 10

// alertFields is an alert record's body: a CAP 1.2 alert under its CAP names, and for an alert
// an early-warning rule wrote, the rule, its state and when it fired.
type alertFields struct {
	cap.Alert
	Rule    string    `json:"rule"`
	Region  string    `json:"region"`
	State   string    `json:"state"`
	FiredAt time.Time `json:"fired_at"`
	// Unevaluable is why the rule of a firing alert cannot be evaluated any more, since when.
	Unevaluable      string     `json:"unevaluable"`
	UnevaluableSince *time.Time `json:"unevaluable_since"`
	// Reopened is how often the alert was opened again after it resolved, the last time at
	// ReopenedAt.
	Reopened   int        `json:"reopened"`
	ReopenedAt *time.Time `json:"reopened_at"`
	// ResolvedAt is when a rule's alert resolved, while it is resolved; Withdrawn says why it
	// was resolved though its rule did not clear (nothing evaluates the rule any more).
	ResolvedAt *time.Time `json:"resolved_at"`
	Withdrawn  string     `json:"withdrawn"`
}

// alertRecordFields lays an alert record's body out for people: the first info block in the
// page's language (else the first), its headline, description, instruction, severity, urgency
// and certainty in the page's words, the areas, expiry, sender and time, and for a rule's alert
// the rule and its state. The body as it is stored follows as technical fields. ok is false for
// a body that is no alert, which is then shown as any other.
func alertRecordFields(l *Lang, body []byte, withheld map[string]bool) (fields []fieldView, ok bool) {
	var b alertFields
	if json.Unmarshal(body, &b) != nil || len(b.Info) == 0 || len(withheld) > 0 {
		return nil, false
	}
	in := infoIn(l, b.Info)
	word := func(group, v string) string {
		if v != "" && l.Has(group+"."+v) {
			return l.T(group + "." + v)
		}
		return v
	}
	var areas []string
	for _, a := range in.Area {
		areas = append(areas, a.AreaDesc)
	}
	add := func(key, value string) {
		if value != "" {
			fields = append(fields, fieldView{Name: key, Label: l.T("alertfield." + key), Value: value})
		}
	}
	headline := cmp.Or(in.Headline, in.Event)
	if b.Rule != "" {
		// The node writes a rule's CAP headline in English, for any receiver: said here in the
		// page's words (review F, F2). The stored one stays among the technical fields.
		key := "alerts.rule"
		if b.State == "resolved" {
			key = "alerts.rule_cleared"
		}
		headline = l.T(key, b.Rule, l.Region(b.Region))
	}
	add("headline", headline)
	add("description", in.Description)
	add("instruction", in.Instruction)
	add("severity", word("severity", in.Severity))
	add("urgency", word("urgency", in.Urgency))
	add("certainty", word("certainty", in.Certainty))
	add("area", strings.Join(areas, "; "))
	add("expires", localTime(l, in.Expires))
	if b.Rule != "" {
		add("rule", b.Rule)
		add("state", word("alertstate", b.State))
		if !b.FiredAt.IsZero() {
			add("fired_at", l.WhenText(b.FiredAt))
		}
		if b.Reopened > 0 && b.ReopenedAt != nil {
			add("reopened", l.T("alerts.reopened", l.WhenText(*b.ReopenedAt), b.Reopened))
		}
		if b.Unevaluable != "" && b.UnevaluableSince != nil {
			add("unevaluable", l.T("alerts.unevaluable", l.WhenText(*b.UnevaluableSince), b.Unevaluable))
		}
	}
	add("sender", cmp.Or(in.SenderName, b.Sender))
	add("sent", localTime(l, b.Sent))
	for _, f := range bodyFields(body, nil, nil, l) {
		f.Label, f.Tech = f.Name, true
		fields = append(fields, f)
	}
	return fields, true
}

// titleOf is what a record is called in the page's language: a rule's alert by what its rule
// says it watches (its description), its region and then its name, or by its name and region
// in words without a description (the node writes its CAP headline in English); any other
// record by its title (record.Title); "" when it has none.
func titleOf(l *Lang, rec *pb.Record) string {
	if rec.GetKind() == record.AlertKind {
		var b alertFields
		if json.Unmarshal(rec.Body, &b) == nil && b.Rule != "" {
			var in cap.Info
			if len(b.Info) > 0 {
				in = infoIn(l, b.Info)
			}
			return ruleAlertTitle(l, rec.Region, b, in, b.State == "resolved")
		}
	}
	return record.Title(rec.Body)
}

// ruleAlertTitle is titleOf of a rule's alert, its info block in in; cleared says it resolved.
func ruleAlertTitle(l *Lang, region string, b alertFields, in cap.Info, cleared bool) string {
	if what := ruleSummary(in.Description); what != "" {
		if cleared {
			return l.T("alerts.rule_described_cleared", what, l.Region(region), b.Rule)
		}
		return l.T("alerts.rule_described", what, l.Region(region), b.Rule)
	}
	if cleared {
		return l.T("alerts.rule_cleared", b.Rule, l.Region(region))
	}
	return l.T("alerts.rule", b.Rule, l.Region(region))
}

// ruleSummary is the first sentence of a rule's description, without its full stop, for an
// alert's title: the rest stays in the alert's text.
func ruleSummary(description string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(description), ". ")
	return strings.TrimSuffix(first, ".")
}

// infoIn is the info block of an alert in the page's language (CAP's nl-NL for nl), else the
// first: an alert in Dutch and English reads in English on an English page.
func infoIn(l *Lang, infos []cap.Info) cap.Info {
	for _, i := range infos {
		if strings.HasPrefix(strings.ToLower(i.Language), l.Code) {
			return i
		}
	}
	return infos[0]
}

// localTime is a CAP time in this node's zone, in the page's words as the record's other times; "" stays "", and a
// time that does not parse stays as written.
func localTime(l *Lang, s string) string {
	if t, err := time.Parse(cap.TimeLayout, s); err == nil {
		return l.WhenText(t)
	}
	return s
}

// activeAlert reads an alert record of the picture, and reports whether it is in force at now:
// a rule's alert while it fires; an imported CAP alert unless it was cancelled, is past, or
// expired. One that ended within clearedShown of now comes back with ended set, and Ended
// saying when.
func activeAlert(l *Lang, e *pb.PictureEntry, now time.Time, back string) (v alertView, inForce, ended bool) {
	var b alertFields
	if e.Kind != record.AlertKind || e.Record == nil || json.Unmarshal(e.Record.Body, &b) != nil || len(b.Info) == 0 {
		return alertView{}, false, false
	}
	in := infoIn(l, b.Info)
	key := sha256.Sum256([]byte(e.Source + "\x00" + e.Record.Origin + "\x00" + e.Record.Id))
	v = alertView{Severity: in.Severity, Region: e.Region, Source: e.Source, Link: withBack(recordLink(e.Record), back),
		Key: "waarschuwing-" + hex.EncodeToString(key[:8])}
	var endedAt time.Time
	endedKey := "alerts.cleared_when"
	switch {
	case b.Rule != "":
		v.Title, v.Detail, v.at = ruleAlertTitle(l, e.Record.Region, b, in, false), in.Description, b.FiredAt
		if b.State != "firing" {
			if b.State != "resolved" || b.ResolvedAt == nil {
				return alertView{}, false, false
			}
			if ruleSummary(in.Description) == "" {
				// Without a description the title says that the rule fires: it says it cleared.
				v.Title = ruleAlertTitle(l, e.Record.Region, b, in, true)
			}
			if endedAt = *b.ResolvedAt; b.Withdrawn != "" {
				endedKey = "alerts.withdrawn_when"
			}
			break
		}
		if ruleSummary(in.Description) == strings.TrimSuffix(strings.TrimSpace(in.Description), ".") {
			v.Detail = "" // all of it is in the title
		}
		if b.Unevaluable != "" && b.UnevaluableSince != nil {
			// Firing, but no longer confirmed: the reader must not take it as current.
			v.Detail = l.T("alerts.unevaluable", l.WhenText(*b.UnevaluableSince), b.Unevaluable)
		}
	default:
		v.Title, v.Detail = in.Headline, in.Description
		if v.Title == "" {
			v.Title = in.Event
		}
		v.at, _ = time.Parse(cap.TimeLayout, b.Sent)
		if b.MsgType == "Cancel" || in.Urgency == "Past" {
			if v.at.IsZero() {
				return alertView{}, false, false // ended, but when is not said: never in force (review U, U2)
			}
			endedAt = v.at
		} else if exp, err := time.Parse(cap.TimeLayout, in.Expires); err == nil && !exp.After(now) {
			endedAt, endedKey = exp, "alerts.expired_when"
		}
	}
	if !endedAt.IsZero() {
		if now.Sub(endedAt) > clearedShown {
			return alertView{}, false, false
		}
		v.Detail, v.at = "", endedAt
		v.Ended = l.T(endedKey, local(endedAt).Format("15:04"), age(l, int64(now.Sub(endedAt)/time.Second)))
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
	if !v.at.IsZero() && v.Ended == "" {
		v.Since = age(l, int64(now.Sub(v.at)/time.Second))
	}
	return v, v.Ended == "", v.Ended != ""
}
