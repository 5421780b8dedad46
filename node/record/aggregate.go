package record

import (
	"encoding/json"
	"math"
)

// SumRegions are the regions whose sums a record of region adds to: its own, and the national
// total NL, which a national record (region NL) adds to once.
func SumRegions(region string) []string {
	if region == "NL" {
		return []string{"NL"}
	}
	return []string{region, "NL"}
}

// AggregateValue is a body's top-level field as the picture, and an assessment of it, add it up:
// a JSON number (the body decoded with UseNumber) within MaxAggregate. A value a node refuses to
// write is left out, as one that is not a number is: no sum of such values can lose units or
// become infinite, which JSON cannot carry.
func AggregateValue(body map[string]any, field string) (float64, bool) {
	n, ok := body[field].(json.Number)
	if !ok {
		return 0, false
	}
	v, err := n.Float64()
	if err != nil || math.Abs(v) > MaxAggregate {
		return 0, false
	}
	return v, true
}
