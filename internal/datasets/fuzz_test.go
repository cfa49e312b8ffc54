package datasets_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/datasets"
)

// The Cranfield and fBasics archives are not pinned as archives (only the
// files made from them are), so the converters read bytes from a mirror
// before anything is verified; these targets check that they cannot be
// crashed and say what their output is.

// FuzzFBasicsToCSV: any member converts into a CSV whose header and rows
// have one width and whose first column counts the rows from 1, or fails.
func FuzzFBasicsToCSV(f *testing.F) {
	for _, s := range []string{
		"%Y-%m-%d;AA;AXP\n1990-12-31;5.92;4.7\n1991-01-02;5.9;4.75\n",
		"%Y-%m-%d;AA\r\n1990-12-31;1e3\r\n", "%Y-%m-%d;A\"A\n1990-12-31;1\n", "%Y-%m-%d;AA\n1990-12-31;NaN\n",
		"%Y-%m-%d;AA\n1990\"-12-31;1\n", "%Y-%m-%d;AA\n\n", "", "date;AA\n1990-12-31;1\n", "%Y-%m-%d;AA\n1990-12-31;1;2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := datasets.FBasicsToCSV(in)
		if err != nil {
			return
		}
		r := csv.NewReader(bytes.NewReader(out))
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatalf("output is not CSV: %v\n%q", err, out)
		}
		if len(recs) < 2 || recs[0][0] != "" || recs[0][1] != "X.Y..m..d" {
			t.Fatalf("header %q", recs[0])
		}
		for i, rec := range recs[1:] {
			if rec[0] != strconv.Itoa(i+1) {
				t.Fatalf("row %d is numbered %q", i+1, rec[0])
			}
		}
	})
}

// FuzzModuleToJSON: any npm data module converts into JSON holding the
// same value as the module's export, in a layout that converting again
// does not change, or fails.
func FuzzModuleToJSON(f *testing.F) {
	for _, s := range []string{
		"// Generated file, do NOT edit\n\nexport default [\n  {\n    \"name\": \"a\\u0001\\\"\\\\\\n.json\",\n    \"input\": \"\\u00e9\\t[]\"\n  },\n  {\"n\": [1.50, [], {}], \"b\": false, \"z\": null}\n]\n",
		"export default {\"a\": {\"b\": [1e400, -0, 0.1e-7]}};", "export default \"\\ud800\"", "export default [1,,2]", "export default", "module.exports = [1]",
		"export default {\"k\": 1, \"k\": 2}", "export default [\"\\u2028\\u0000\"]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := datasets.ModuleToJSON(in)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("output is not JSON: %q", out)
		}
		body := in[bytes.Index(in, []byte("export default"))+len("export default"):]
		body = bytes.TrimSuffix(bytes.TrimSpace(body), []byte(";"))
		if want, got := decode(t, body), decode(t, out); !reflect.DeepEqual(want, got) {
			t.Fatalf("value changed:\n%v\n%v", want, got)
		}
		again, err := datasets.ModuleToJSON(append([]byte("export default "), out...))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("converting the output again changes it (%v):\n%s\n%s", err, out, again)
		}
	})
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}
