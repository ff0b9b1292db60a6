package tut

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/seqbook/seqbook/client/amount"
)

func TestPositiveAmount(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want uint64
		err  string
	}{
		{`1.5`, 1_500_000, ""},
		{`"1.5"`, 1_500_000, ""},
		{`2000`, 2_000_000_000, ""},
		{`1e3`, 1_000_000_000, ""},
		{`200.0`, 200_000_000, ""},
		{`"0.000001"`, 1, ""},
		{``, 0, "required"},
		{`null`, 0, "required"},
		{`0`, 0, "greater than zero"},
		{`-1`, 0, "negative"},
		{`1.0000001`, 0, "more than 6 decimals"},
		{`"abc"`, 0, "not a decimal"},
		{`true`, 0, "expected a number"},
		{`{}`, 0, "expected a number"},
		{`9223372036854.775808`, 0, "exceeds"},
	} {
		got, e := PositiveAmount("quantity", AmountField(tc.raw))
		if tc.err == "" {
			if e != nil || got != tc.want {
				t.Errorf("PositiveAmount(%s) = %d, %v; want %d", tc.raw, got, e, tc.want)
			}
			continue
		}
		if e == nil || e.Status != http.StatusBadRequest || !strings.Contains(e.Msg, tc.err) || !strings.Contains(e.Msg, `"quantity"`) {
			t.Errorf("PositiveAmount(%s) = %d, %v; want a 400 naming the field and saying %q", tc.raw, got, e, tc.err)
		}
	}
}

func TestAmountMarshalsAsExactNumber(t *testing.T) {
	b, err := json.Marshal(struct {
		A, B, C Amount
	}{1_500_000, 2_000_000_000, 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"A":1.5,"B":2000,"C":0.000001}` {
		t.Fatalf("marshalled %s", b)
	}
}

type probe struct {
	Name string      `json:"name"`
	Qty  AmountField `json:"quantity"`
}

func decodeBody(body string) (*probe, *HTTPError) {
	gin.SetMode(gin.ReleaseMode)
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("POST", "/", strings.NewReader(body))
	var p probe
	if e := DecodeJSON(c, &p); e != nil {
		return nil, e
	}
	return &p, nil
}

func TestDecodeJSON(t *testing.T) {
	p, e := decodeBody(`{"name":"x","quantity":"1.5"}`)
	if e != nil || p.Name != "x" || string(p.Qty) != `"1.5"` {
		t.Fatalf("decode: %+v %v", p, e)
	}
	for body, want := range map[string]string{
		``:                         "empty request body",
		`{`:                        "malformed JSON",
		`{"name":1}`:               `field "name"`,
		`{"other":1}`:              `unknown field "other"`,
		`{"name":"x"} {}`:          "trailing data",
		`{"name":"x"`:              "malformed JSON",
		`"str"`:                    "invalid request",
		strings.Repeat(" ", 70000): "over",
	} {
		if _, e := decodeBody(body); e == nil || !strings.Contains(e.Msg, want) {
			t.Errorf("decode %.20q: %v, want an error saying %q", body, e, want)
		}
	}
}

func TestBookPlaceAndRefusals(t *testing.T) {
	b, err := NewBook(TutorialGenesis("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	var placed *Placed
	var e *HTTPError
	b.Lock(func(l *Locked) {
		placed, e = l.Place(OrderIn{ID: "1", Account: "a", Side: "buy", Base: "ETH", Quote: "USDT", Qty: amount.Scale, Price: 100 * amount.Scale})
	})
	if e != nil || placed.Status != "open" {
		t.Fatalf("place: %+v %v", placed, e)
	}
	for _, tc := range []struct {
		in     OrderIn
		status int
		want   string
	}{
		{OrderIn{ID: "1", Account: "a", Side: "buy", Base: "ETH", Quote: "USDT", Qty: 1, Price: amount.Scale}, http.StatusConflict, "already has id"},
		{OrderIn{ID: "2", Account: "a", Side: "buy", Base: "ETH", Quote: "USDT", Qty: 10 * amount.Scale, Price: 100 * amount.Scale}, http.StatusForbidden, "needs 1000, available 900"},
		{OrderIn{ID: "3", Account: "c", Side: "sell", Base: "ETH", Quote: "USDT", Qty: 1, Price: 1}, http.StatusBadRequest, "below one base unit"},
		{OrderIn{ID: "4", Account: "a", Side: "buy", Base: "ETH", Quote: "ETH", Qty: 1, Price: amount.Scale}, http.StatusBadRequest, "different"},
		{OrderIn{ID: "5", Account: "a", Side: "hold", Base: "ETH", Quote: "USDT", Qty: 1, Price: amount.Scale}, http.StatusBadRequest, "order_type"},
	} {
		b.Lock(func(l *Locked) { placed, e = l.Place(tc.in) })
		if e == nil || e.Status != tc.status || !strings.Contains(e.Msg, tc.want) {
			t.Errorf("%+v: %v, want %d saying %q", tc.in, e, tc.status, tc.want)
		}
	}
	if got := b.Balance("a", "USDT"); got != 900*amount.Scale {
		t.Fatalf("balance %d", got)
	}
	if err := b.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// FuzzPositiveAmount: the amount field decoder never panics, and whatever
// it accepts is a positive amount whose text reads back the same.
func FuzzPositiveAmount(f *testing.F) {
	for _, s := range []string{`1.5`, `"1.5"`, `2000`, `1e3`, `""`, `null`, `-1`, `"`, `{}`, `0.0000001`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, e := PositiveAmount("quantity", AmountField(raw))
		if e != nil {
			if e.Status != http.StatusBadRequest {
				t.Fatalf("status %d", e.Status)
			}
			return
		}
		if v == 0 || v > amount.Max {
			t.Fatalf("accepted %q as %d", raw, v)
		}
	})
}

// FuzzDecodeJSON: any body, never a panic, and every refusal is a 4xx.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"x","quantity":1}`, `{`, ``, `[]`, `{"other":1}`, `{"name":"x"} 1`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if _, e := decodeBody(body); e != nil && (e.Status < 400 || e.Status > 499) {
			t.Fatalf("status %d for %q", e.Status, body)
		}
	})
}
