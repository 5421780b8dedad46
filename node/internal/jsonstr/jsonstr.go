// Package jsonstr writes strings as JSON byte for byte as the two encoders the node must match:
// encoding/json, whose bytes the audit chain hashes and the history stores, and protojson, whose
// bytes the REST API's direct encoder writes. Both run for every entry or record written, where
// the encoders themselves cost a reflection walk or an allocation per string.
package jsonstr

import "unicode/utf8"

// AppendEncodingJSON appends s quoted as encoding/json quotes a string: '"' and '\\' escaped,
// control characters as \b, \f, \n, \r, \t or \u00XX, '<', '>' and '&' as \u00XX (HTML-safe),
// U+2028 and U+2029 escaped, and each byte of invalid UTF-8 as \ufffd.
func AppendEncodingJSON(b []byte, s string) []byte {
	b, _ = appendQuoted(b, s, true)
	return b
}

// AppendProtoJSON appends s quoted as protojson quotes a string: only '"', '\\' and the control
// characters are escaped, the short forms where JSON has one. False when s is not valid UTF-8,
// which protojson refuses.
func AppendProtoJSON(b []byte, s string) ([]byte, bool) {
	return appendQuoted(b, s, false)
}

const hexDigits = "0123456789abcdef"

// appendQuoted quotes s as encoding/json does when html, else as protojson does.
func appendQuoted(b []byte, s string, html bool) ([]byte, bool) {
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && (!html || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			b = append(b, s[done:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			if !html {
				return nil, false
			}
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
		case html && (r == '\u2028' || r == '\u2029'):
			b = append(b, s[done:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"'), true
}
