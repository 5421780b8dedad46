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
