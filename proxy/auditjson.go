package proxy

import (
	"strconv"
	"unicode/utf8"
)

// appendAuditRecord appends r's JSON line to b: byte for byte what
// encoding/json's Encoder (HTML escaping on) writes for it, newline
// included (TestAuditJSONMatchesEncoder, FuzzAuditJSON), without its
// reflection and allocations.
func appendAuditRecord(b []byte, r *AuditRecord) ([]byte, error) {
	b = append(b, `{"time":"`...)
	b, err := r.Time.AppendText(b)
	if err != nil {
		return b, err
	}
	b = append(b, `","user":`...)
	b = appendJSONString(b, r.User)
	b = append(b, `,"groups":`...)
	if r.Groups == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, g := range r.Groups {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, g)
		}
		b = append(b, ']')
	}
	b = append(b, `,"serial":`...)
	b = appendJSONString(b, r.Serial)
	b = append(b, `,"remote":`...)
	b = appendJSONString(b, r.Remote)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"decision":`...)
	b = appendJSONString(b, r.Decision)
	if r.Rule != "" {
		b = append(b, `,"rule":`...)
		b = appendJSONString(b, r.Rule)
	}
	if r.Guard != "" {
		b = append(b, `,"guard":`...)
		b = appendJSONString(b, r.Guard)
	}
	if r.Hijacked {
		b = append(b, `,"hijacked":true`...)
	}
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(r.Duration), 10)
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, r.Error)
	}
	return append(b, "}\n"...), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does with HTML
// escaping: <, > and & as \u003c, \u003e, \u0026, control characters as
// \b, \f, \n, \r, \t or \u00XX, U+2028 and U+2029 escaped, and each
// invalid UTF-8 byte as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
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
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
