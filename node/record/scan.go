package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Bounds on a body that its kind's schema cannot give: the schema library turns every number a
// keyword looks at into an exact fraction, so that 1e999999 costs it a power of ten in full, tens
// of milliseconds a number; and nothing in a schema bounds how deep a body nests.
const (
	// MaxDepth is how deep objects and arrays may nest in a body, the body itself being the first.
	MaxDepth = 64
	// MaxNumberDigits is the most digits a number in a body may have, before and after its point
	// together.
	MaxNumberDigits = 40
	// MaxNumberExponent is the largest exponent, either way, a number in a body may be written
	// with. A number must also fit a float64: at most about 1.8e308 in magnitude, and 0 or at
	// least about 5e-324.
	MaxNumberExponent = 400
)

// scanFrame is an object or array that the scan is inside.
type scanFrame struct {
	object  bool
	wantKey bool                // an object: the next token is a key or its end
	key     string              // an object: the key of the member being read
	index   int                 // an array: the index of the element being read
	keys    []string            // an object's keys so far, while it has few
	keySet  map[string]struct{} // an object's keys so far, once it has many
}

// fewKeys is how many keys an object's frame compares one by one before it keeps them in a map.
const fewKeys = 16

// seen says whether the frame's object had key already, and notes it.
func (f *scanFrame) seen(key string) bool {
	if f.keySet == nil {
		for _, k := range f.keys {
			if k == key {
				return true
			}
		}
		if len(f.keys) < fewKeys {
			f.keys = append(f.keys, key)
			return false
		}
		f.keySet = make(map[string]struct{}, 2*fewKeys)
		for _, k := range f.keys {
			f.keySet[k] = struct{}{}
		}
		f.keys = nil
	}
	if _, ok := f.keySet[key]; ok {
		return true
	}
	f.keySet[key] = struct{}{}
	return false
}

// scanBody reads a body, valid JSON, once, token by token, and refuses the first of: an object
// with a key twice (named at the object), a value nested deeper than MaxDepth, or a number
// outside the bounds above (each named at the value, from at). A path is built only for a
// refusal.
func scanBody(body []byte, at string) *FieldError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []scanFrame
	// path is the path, from at, through the first n frames to the value each is reading.
	path := func(n int) string {
		var b strings.Builder
		b.WriteString(at)
		for _, f := range stack[:n] {
			b.WriteByte('.')
			if f.object {
				b.WriteString(f.key)
			} else {
				b.WriteString(strconv.Itoa(f.index))
			}
		}
		return b.String()
	}
	// done moves the innermost frame past the value it was reading.
	done := func() {
		if len(stack) == 0 {
			return
		}
		if f := &stack[len(stack)-1]; f.object {
			f.wantKey = true
		} else {
			f.index++
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return invalid(at, "not JSON: %v", err)
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			f := &stack[n-1]
			key, ok := tok.(string)
			if !ok { // the object's end
				stack = stack[:n-1]
				done()
				continue
			}
			if f.seen(key) {
				// Decoders disagree on which value counts (the schema is checked against the
				// last, a reader may take the first), so that a duplicate could carry a value the
				// schema forbids.
				return invalid(path(n-1), "duplicate key %q: give each field once", key)
			}
			f.key, f.wantKey = key, false
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) == MaxDepth {
					return invalid(path(len(stack)), "nested deeper than %d objects and arrays: flatten the body", MaxDepth)
				}
				stack = append(stack, scanFrame{object: t == '{', wantKey: t == '{'})
				continue
			case ']':
				stack = stack[:len(stack)-1]
			}
		case json.Number:
			if reason := numberProblem(string(t)); reason != "" {
				return invalid(path(len(stack)), "%s", reason)
			}
		}
		done()
	}
}

// numberProblem says what is wrong with a JSON number, or nothing when it is within the bounds.
func numberProblem(s string) string {
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
	}
	digits, nonzero := 0, false
	for i := 0; i < len(mant); i++ {
		if c := mant[i]; c >= '0' && c <= '9' {
			digits++
			nonzero = nonzero || c != '0'
		}
	}
	if digits > MaxNumberDigits {
		return fmt.Sprintf("a number of %d digits is over the limit of %d", digits, MaxNumberDigits)
	}
	e := strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0")
	n, err := strconv.Atoi(e)
	inRange := e == "" || (len(e) <= 6 && err == nil && n <= MaxNumberExponent)
	if inRange {
		// Cheap now: at most MaxNumberDigits digits and a bounded exponent.
		f, err := strconv.ParseFloat(s, 64)
		inRange = err == nil && (f != 0 || !nonzero)
	}
	if !inRange {
		return fmt.Sprintf("%s is out of range: write a number of at most about 1.8e308 in magnitude, 0 or at least about 5e-324, with an exponent of at most %d", shortNumber(s), MaxNumberExponent)
	}
	return ""
}

// shortNumber is a number as a refusal quotes it: whole, or its start when it is long (an
// exponent may carry any number of leading zeros).
func shortNumber(s string) string {
	if len(s) <= 48 {
		return s
	}
	return s[:40] + "…"
}
