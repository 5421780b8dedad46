package metrics

import (
	"testing"
	"time"
)

// TestWebhookQueues: the queue gauges have one series each per webhook the leader last read,
// the age of a queue's head computed when scraped (0 for an empty queue), and none once cleared.
func TestWebhookQueues(t *testing.T) {
	gauges := func() map[string]map[string]float64 {
		t.Helper()
		families, err := Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "webhook" {
						if out[f.GetName()] == nil {
							out[f.GetName()] = map[string]float64{}
						}
						out[f.GetName()][l.GetValue()] = m.GetGauge().GetValue()
					}
				}
			}
		}
		return out
	}
	WebhookQueues.Set(map[string]WebhookQueue{
		"wh_stuck": {Queued: 3, Head: time.Now().Add(-90 * time.Second)},
		"wh_empty": {},
	})
	t.Cleanup(func() { WebhookQueues.Set(nil) })
	g := gauges()
	if q := g["knooppunt_webhook_queued"]; len(q) != 2 || q["wh_stuck"] != 3 || q["wh_empty"] != 0 {
		t.Errorf("knooppunt_webhook_queued %v: want wh_stuck 3, wh_empty 0", q)
	}
	if a := g["knooppunt_webhook_oldest_queued_seconds"]; len(a) != 2 || a["wh_stuck"] < 90 || a["wh_stuck"] > 120 || a["wh_empty"] != 0 {
		t.Errorf("knooppunt_webhook_oldest_queued_seconds %v: want wh_stuck about 90, wh_empty 0", a)
	}
	WebhookQueues.Set(nil)
	if g := gauges(); len(g) != 0 {
		t.Errorf("after Set(nil): %v, want no series", g)
	}
}

// TestOutcomesStartAtZero: the counters of a fixed set of outcomes have a series for each from
// the start, so that an alert on an error outcome sees 0 rather than no data.
func TestOutcomesStartAtZero(t *testing.T) {
	for name, outcomes := range map[string][]string{
		"knooppunt_backups_total": {"ok", "error"}, "knooppunt_erasures_total": {"ok", "error"},
		"knooppunt_record_writes_total": {"ok", "refused", "failed"}, "knooppunt_webhook_attempts_total": {"delivered", "failed", "refused", "dead"},
	} {
		for _, o := range outcomes {
			if n := Series(name, map[string]string{"outcome": o}); n != 1 {
				t.Errorf("%s{outcome=%q}: %d series, want 1", name, o, n)
			}
		}
	}
}
