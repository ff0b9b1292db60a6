package replicated

import "testing"

func TestDecodeBatchRefuses(t *testing.T) {
	for _, body := range []string{`{}`, `[] []`, `[{"id":1}]`, `"x"`} {
		if _, err := DecodeBatch([]byte(body)); err == nil {
			t.Errorf("DecodeBatch(%q) accepted", body)
		}
	}
	// Step 3's rule: unknown fields are ignored.
	if ops, err := DecodeBatch([]byte(`[{"id":"x","extra":1}]`)); err != nil || len(ops) != 1 {
		t.Errorf("an order with an extra field: %v", err)
	}
}
