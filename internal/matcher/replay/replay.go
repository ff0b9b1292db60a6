// Package replay runs the matcher over operations written as JSON lines and
// prints what happened as JSON lines: the `seqbook replay` tool of DESIGN §7,
// which checks the matcher without signatures or network.
//
// Input, one JSON object per line:
//
//	{"op":"deposit","account":..,"token":..,"amount":..}
//	{"op":"withdraw","account":..,"token":..,"amount":..}   (an extension: not in DESIGN §7)
//	{"op":"order","id":..,"account":..,"market":..,"side":"buy"|"sell","type":"limit"|"market"|"ioc"|"fok"|"post_only","quantity":..,"price":..}
//	{"op":"cancel","account":..,"id":..}
//
// Amounts are decimal strings ("1.5") or JSON numbers (1.5, 2e3), read
// exactly from their text, never through a float. Unknown fields are
// ignored; every listed field is required. Blank lines are skipped.
//
// Output, in this order, keys in exactly this order:
//
//	{"event":"trade","market":..,"maker_order":..,"taker_order":..,"price":..,"quantity":..}  per fill
//	{"event":"rejected","id":..,"reason":..}  per refused or malformed line
//	{"event":"balance","account":..,"token":..,"available":..,"reserved":..}  at the end, per non-zero
//	                                          balance, sorted by account then token (byte order)
//
// with amounts as decimal strings (amount.Format). The id of a rejected line
// is its "id" field when it has one that is a JSON string (orders and
// cancels), otherwise "line N" with N the 1-based line number in the input
// (deposits, withdrawals, lines that are not JSON). The reason is the
// matcher's stable error text ("insufficient balance", "unknown order", …)
// or a decoding problem ("malformed JSON", `missing field "amount"`,
// `invalid quantity: more than 6 decimals: "1.0000001"`, …).
package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/seqbook/seqbook/client/amount"
	"github.com/seqbook/seqbook/internal/matcher"
)

// LineBytesMax bounds one input line, like the 1 MiB bound on a sequencer
// batch: an operation is a few hundred bytes, so a longer line is refused
// (as a rejected event) rather than buffered whole.
const LineBytesMax = 1 << 20

// Op kinds.
const (
	OpDeposit  = "deposit"
	OpWithdraw = "withdraw"
	OpOrder    = "order"
	OpCancel   = "cancel"
)

// Op is one decoded input line.
type Op struct {
	Kind    string        // OpDeposit, OpWithdraw, OpOrder or OpCancel
	Account string        // deposit, withdraw, cancel
	Token   string        // deposit, withdraw
	Amount  uint64        // deposit, withdraw
	ID      string        // cancel: the order to cancel
	Order   matcher.Order // order
}

// wireOp is the line as JSON; fields stay raw so presence, types and
// amounts are checked by hand with precise messages.
type wireOp struct {
	Op       json.RawMessage `json:"op"`
	ID       json.RawMessage `json:"id"`
	Account  json.RawMessage `json:"account"`
	Token    json.RawMessage `json:"token"`
	Amount   json.RawMessage `json:"amount"`
	Market   json.RawMessage `json:"market"`
	Side     json.RawMessage `json:"side"`
	Type     json.RawMessage `json:"type"`
	Quantity json.RawMessage `json:"quantity"`
	Price    json.RawMessage `json:"price"`
}

// ErrMalformed is the reason for a line that is not one JSON object.
var ErrMalformed = errors.New("malformed JSON")

// DecodeLine decodes one input line. It checks syntax, presence and types
// of the fields and parses amounts, side and type; whether the operation is
// acceptable is the matcher's business. id is the line's "id" field when it
// is a JSON string (even if decoding failed later), for the rejected event.
func DecodeLine(line []byte) (op Op, id string, err error) {
	var w wireOp
	if err := json.Unmarshal(line, &w); err != nil {
		return Op{}, "", ErrMalformed
	}
	if string(bytes.TrimSpace(line)) == "null" {
		return Op{}, "", ErrMalformed // json.Unmarshal takes null for an empty object
	}
	if present(w.ID) {
		_ = json.Unmarshal(w.ID, &id) // best effort: a non-string id is reported below
	}
	d := fieldDecoder{}
	kind := d.str("op", w.Op)
	if d.err != nil {
		return Op{}, id, d.err
	}
	op.Kind = kind
	switch kind {
	case OpDeposit, OpWithdraw:
		op.Account = d.str("account", w.Account)
		op.Token = d.str("token", w.Token)
		op.Amount = d.amount("amount", w.Amount)
	case OpCancel:
		op.Account = d.str("account", w.Account)
		op.ID = d.str("id", w.ID)
	case OpOrder:
		o := &op.Order
		o.ID = d.str("id", w.ID)
		o.Account = d.str("account", w.Account)
		o.Market = d.str("market", w.Market)
		if s := d.str("side", w.Side); d.err == nil {
			o.Side, d.err = matcher.ParseSide(s)
		}
		if t := d.str("type", w.Type); d.err == nil {
			o.Type, d.err = matcher.ParseOrderType(t)
		}
		o.Quantity = d.amount("quantity", w.Quantity)
		o.Price = d.amount("price", w.Price)
	default:
		return Op{}, id, fmt.Errorf("unknown op %s", strconv.Quote(kind))
	}
	if d.err != nil {
		return Op{}, id, d.err
	}
	return op, id, nil
}

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// fieldDecoder keeps the first field error so DecodeLine reads straight.
type fieldDecoder struct{ err error }

func (d *fieldDecoder) str(name string, raw json.RawMessage) string {
	if d.err != nil {
		return ""
	}
	if !present(raw) {
		d.err = fmt.Errorf("missing field %q", name)
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		d.err = fmt.Errorf("field %q must be a string", name)
		return ""
	}
	return s
}

// amount reads a decimal string or a JSON number from its text.
func (d *fieldDecoder) amount(name string, raw json.RawMessage) uint64 {
	if d.err != nil {
		return 0
	}
	if !present(raw) {
		d.err = fmt.Errorf("missing field %q", name)
		return 0
	}
	var text string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			d.err = fmt.Errorf("invalid %s: not a string", name)
			return 0
		}
	} else {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			d.err = fmt.Errorf("invalid %s: must be a decimal string or a number", name)
			return 0
		}
		text = n.String()
	}
	v, err := amount.Parse(text)
	if err != nil {
		d.err = fmt.Errorf("invalid %s: %w", name, err)
		return 0
	}
	return v
}

// Event shapes; field order is the output key order.
type tradeEvent struct {
	Event      string `json:"event"`
	Market     string `json:"market"`
	MakerOrder string `json:"maker_order"`
	TakerOrder string `json:"taker_order"`
	Price      string `json:"price"`
	Quantity   string `json:"quantity"`
}

type rejectedEvent struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

type balanceEvent struct {
	Event     string `json:"event"`
	Account   string `json:"account"`
	Token     string `json:"token"`
	Available string `json:"available"`
	Reserved  string `json:"reserved"`
}

// Apply applies one decoded operation to the engine. An order's trades are
// left in res; a rejection is the returned error, whose text is the reason.
func Apply(e *matcher.Engine, op Op, res *matcher.PlaceResult) error {
	switch op.Kind {
	case OpDeposit:
		return e.Deposit(op.Account, op.Token, op.Amount)
	case OpWithdraw:
		return e.Withdraw(op.Account, op.Token, op.Amount)
	case OpCancel:
		_, err := e.Cancel(op.Account, op.ID)
		return err
	case OpOrder:
		return e.PlaceInto(op.Order, res)
	}
	panic("replay: unknown op kind " + op.Kind)
}

// Run reads operations from r until EOF, applies them in order to a new
// engine with cfg, and writes the events to w. Bad lines become rejected
// events; only read and write failures are returned. It returns the
// engine, for tests that look further.
func Run(r io.Reader, w io.Writer, cfg matcher.Config) (*matcher.Engine, error) {
	e := matcher.New(cfg)
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var res matcher.PlaceResult
	for lineNo := 1; ; lineNo++ {
		line, tooLong, err := readLine(br)
		if err != nil && err != io.EOF {
			return e, err
		}
		if err == io.EOF && len(line) == 0 && !tooLong {
			break
		}
		if werr := step(e, enc, &res, line, tooLong, lineNo); werr != nil {
			return e, werr
		}
		if err == io.EOF {
			break
		}
	}
	for _, b := range e.Balances() {
		if err := enc.Encode(balanceEvent{"balance", b.Account, b.Token, amount.Format(b.Available), amount.Format(b.Reserved)}); err != nil {
			return e, err
		}
	}
	return e, bw.Flush()
}

// step handles one line and returns only write errors.
func step(e *matcher.Engine, enc *json.Encoder, res *matcher.PlaceResult, line []byte, tooLong bool, lineNo int) error {
	lineID := "line " + strconv.Itoa(lineNo)
	if tooLong {
		return enc.Encode(rejectedEvent{"rejected", lineID, fmt.Sprintf("line longer than %d bytes", LineBytesMax)})
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	op, id, err := DecodeLine(line)
	if id == "" {
		id = lineID
	}
	if err == nil {
		err = Apply(e, op, res)
	}
	if err != nil {
		return enc.Encode(rejectedEvent{"rejected", id, err.Error()})
	}
	if op.Kind == OpOrder {
		for _, t := range res.Trades {
			ev := tradeEvent{"trade", t.Market, t.MakerOrder, t.TakerOrder, amount.Format(t.Price), amount.Format(t.Quantity)}
			if err := enc.Encode(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// readLine returns the next line without its end of line ("\n" or "\r\n").
// A line over LineBytesMax is consumed to its end and reported as tooLong.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > LineBytesMax+2 { // +2: the line end itself
			tooLong = true
			buf = buf[:0]
		} else if !tooLong {
			buf = append(buf, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if tooLong {
			return nil, true, err
		}
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		return buf, false, err
	}
}
