// Package matcher is seqbook's orderbook state machine (DESIGN §5): balances
// with reservations, price-time priority matching of limit and market orders
// per market, self-trade prevention, no dust fill (see Dust), a canonical
// snapshot and a state digest.
//
// It is a pure, deterministic core in the sense of STYLE §1: no I/O, no
// goroutines, no clock, no randomness, and no Go map is ever iterated to
// produce output or state. Every replica that applies the same operations in
// the same order reaches the same state, the same events and the same
// Digest. Maps are used only for lookups by name; everything ordered lives in
// slices and intrusive lists.
//
// Every operation either applies fully or returns an error and changes
// nothing. Errors returned for bad input are the sentinel Err* values below,
// unwrapped, so err.Error() is a stable reason string that replicas and the
// replay tool may print and compare.
//
// An Engine is not safe for concurrent use: the replica applies batches from
// one goroutine and must serialise reads against it.
package matcher

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/seqbook/seqbook/client/amount"
)

// Side is the side of an order. The zero value is invalid, so an order built
// without a side is rejected rather than silently treated as a buy.
type Side uint8

// The two sides of an order.
const (
	Buy  Side = 1
	Sell Side = 2
)

// String returns "buy" or "sell" (the wire spelling of DESIGN §3.1).
func (s Side) String() string {
	switch s {
	case Buy:
		return "buy"
	case Sell:
		return "sell"
	}
	return fmt.Sprintf("Side(%d)", uint8(s))
}

// ParseSide reads the wire spelling "buy" or "sell".
func ParseSide(s string) (Side, error) {
	switch s {
	case "buy":
		return Buy, nil
	case "sell":
		return Sell, nil
	}
	return 0, ErrInvalidSide
}

// OrderType is how an order treats liquidity (DESIGN §8). The zero value
// is invalid.
type OrderType uint8

// The order types. Limit orders are good till cancelled: what does not fill
// rests. Market and IOC orders are immediate-or-cancel with their price as
// the worst acceptable price; they never rest (the two differ only in name:
// a market order is an IOC order whose price is a protection bound). A FOK
// order fills completely at once or is rejected and changes nothing. A
// post-only order is rejected if it would take liquidity at entry;
// otherwise it rests like a limit order (and reads back as one).
const (
	Limit    OrderType = 1
	Market   OrderType = 2
	IOC      OrderType = 3
	FOK      OrderType = 4
	PostOnly OrderType = 5
)

// String returns the wire spelling: "limit", "market", "ioc", "fok" or
// "post_only".
func (t OrderType) String() string {
	switch t {
	case Limit:
		return "limit"
	case Market:
		return "market"
	case IOC:
		return "ioc"
	case FOK:
		return "fok"
	case PostOnly:
		return "post_only"
	}
	return fmt.Sprintf("OrderType(%d)", uint8(t))
}

// Valid reports whether t is one of the order types.
func (t OrderType) Valid() bool { return t >= Limit && t <= PostOnly }

// Rests reports whether an unfilled remainder of an order of this type rests
// in the book (limit and post-only orders) rather than being cancelled.
func (t OrderType) Rests() bool { return t == Limit || t == PostOnly }

// OrderTypeNames lists the wire spellings, for error messages and docs.
const OrderTypeNames = `"limit", "market", "ioc", "fok" or "post_only"`

// ParseOrderType reads a wire spelling (see String).
func ParseOrderType(s string) (OrderType, error) {
	switch s {
	case "limit":
		return Limit, nil
	case "market":
		return Market, nil
	case "ioc":
		return IOC, nil
	case "fok":
		return FOK, nil
	case "post_only":
		return PostOnly, nil
	}
	return 0, ErrInvalidOrderType
}

// Status is where an order stands. Open orders are StatusOpen or
// StatusPartiallyFilled; the engine forgets an order once it is closed
// (StatusFilled or StatusCancelled), so those two appear only in the results
// of Place and Cancel: the caller keeps closed-order history (the replica
// persists it next to trades), which keeps the consensus state bounded by the
// open book.
type Status uint8

// Order statuses.
const (
	StatusOpen            Status = 1 // resting, nothing filled yet
	StatusPartiallyFilled Status = 2 // resting, part filled
	StatusFilled          Status = 3 // closed: fully filled
	StatusCancelled       Status = 4 // closed: cancelled (by its owner, by self-trade prevention, the unfilled rest of a market or IOC order, or a dust remainder); may have partial fills
)

// String returns the lower-case name used in APIs: "open",
// "partially_filled", "filled", "cancelled".
func (s Status) String() string {
	switch s {
	case StatusOpen:
		return "open"
	case StatusPartiallyFilled:
		return "partially_filled"
	case StatusFilled:
		return "filled"
	case StatusCancelled:
		return "cancelled"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Rejection reasons. They are returned unwrapped; their text is part of the
// replay output contract, so do not reword them.
var (
	ErrInvalidAccount      = errors.New("invalid account")
	ErrInvalidToken        = errors.New("invalid token")
	ErrInvalidMarket       = errors.New("invalid market")
	ErrInvalidOrderID      = errors.New("invalid order id")
	ErrInvalidSide         = errors.New("invalid side")
	ErrInvalidOrderType    = errors.New("invalid order type")
	ErrZeroAmount          = errors.New("zero amount")
	ErrZeroQuantity        = errors.New("zero quantity")
	ErrZeroPrice           = errors.New("zero price")
	ErrAmountTooLarge      = errors.New("amount too large")
	ErrZeroQuoteAmount     = errors.New("zero quote amount")
	ErrQuoteOverflow       = errors.New("quote amount overflows")
	ErrSupplyOverflow      = errors.New("token supply would exceed 2^63-1 base units")
	ErrInsufficientBalance = errors.New("insufficient balance")
	ErrDuplicateOrderID    = errors.New("duplicate order id")
	ErrTooManyOpenOrders   = errors.New("too many open orders")
	ErrUnknownOrder        = errors.New("unknown order")
	ErrNotOwner            = errors.New("not the order's owner")
	ErrWouldTakeLiquidity  = errors.New("post-only order would take liquidity")
	ErrCannotFillInFull    = errors.New("fill-or-kill order cannot be filled in full")
)

// NameBytesMax bounds the length of account names, token names, market names
// and order ids. Real ones are short (a 0x address is 42 bytes, an order id
// 66); the bound keeps one operation from growing every replica's memory and
// snapshot by an arbitrary amount.
const NameBytesMax = 128

// Config holds the engine's knobs. Every replica must use the same values:
// they change which operations are accepted.
type Config struct {
	// OpenOrdersPerAccountMax bounds the resting orders of one account.
	// Each resting order costs memory, snapshot bytes and digest time on
	// every replica; without a bound one funded account could split its
	// balance into millions of dust orders. A limit order is rejected when
	// its account already holds this many; market orders never rest and
	// are not counted.
	OpenOrdersPerAccountMax int
}

// DefaultConfig returns the production configuration.
func DefaultConfig() Config {
	return Config{OpenOrdersPerAccountMax: 1000}
}

// ValidateBasic checks the configuration on its own.
func (c Config) ValidateBasic() error {
	if c.OpenOrdersPerAccountMax < 1 {
		return fmt.Errorf("matcher: OpenOrdersPerAccountMax must be at least 1, got %d", c.OpenOrdersPerAccountMax)
	}
	return nil
}

// Order is an order as submitted. ID is chosen by the caller (the replica
// uses the EIP-712 digest) and must differ from every open order's ID.
//
// Uniqueness is checked among open orders only, not among every order ever
// seen: remembering every ID forever would make the state grow without bound,
// and in the real system IDs cannot repeat anyway, because an order's ID is
// the digest of a message carrying a (trader, nonce) pair the replica accepts
// once. So an ID may be reused once its order is closed.
type Order struct {
	ID       string
	Account  string
	Market   string // "BASE/QUOTE"
	Side     Side
	Type     OrderType
	Quantity uint64 // base units of the base token
	Price    uint64 // quote units per whole base token; for market orders the worst acceptable price
}

// ValidateBasic checks everything about the order that needs no state, in
// the order the engine reports problems: id, account, market, side, type,
// quantity, price, then the quote amount (dust or overflow).
func (o *Order) ValidateBasic() error {
	if !validName(o.ID) {
		return ErrInvalidOrderID
	}
	if !validName(o.Account) {
		return ErrInvalidAccount
	}
	if _, _, err := SplitMarket(o.Market); err != nil {
		return err
	}
	return o.validateAfterMarket()
}

// validateKnownMarket is ValidateBasic for an order whose market the engine
// already knows (so it is valid), keeping the same order of checks.
func (o *Order) validateKnownMarket() error {
	if !validName(o.ID) {
		return ErrInvalidOrderID
	}
	if !validName(o.Account) {
		return ErrInvalidAccount
	}
	return o.validateAfterMarket()
}

func (o *Order) validateAfterMarket() error {
	if o.Side != Buy && o.Side != Sell {
		return ErrInvalidSide
	}
	if !o.Type.Valid() {
		return ErrInvalidOrderType
	}
	if o.Quantity == 0 {
		return ErrZeroQuantity
	}
	if o.Price == 0 {
		return ErrZeroPrice
	}
	if o.Quantity > amount.Max || o.Price > amount.Max {
		return ErrAmountTooLarge
	}
	// amount.Quote, with the common 64-bit product kept off the divide
	// instruction.
	hi, lo := bits.Mul64(o.Quantity, o.Price)
	if hi != 0 {
		if _, err := amount.Quote(o.Quantity, o.Price); err != nil {
			return ErrQuoteOverflow
		}
	} else if lo/amount.Scale > amount.Max {
		return ErrQuoteOverflow
	}
	if Dust(o.Quantity, o.Price) {
		return ErrZeroQuoteAmount
	}
	return nil
}

// SplitMarket splits "BASE/QUOTE" into its two tokens: both valid token
// names, and different.
func SplitMarket(m string) (base, quote string, err error) {
	i := strings.IndexByte(m, '/')
	if i < 0 || len(m) > NameBytesMax {
		return "", "", ErrInvalidMarket
	}
	base, quote = m[:i], m[i+1:]
	if !validToken(base) || !validToken(quote) || base == quote {
		return "", "", ErrInvalidMarket
	}
	return base, quote, nil
}

func validName(s string) bool { return s != "" && len(s) <= NameBytesMax }

// validToken also refuses '/', so every token can be half of a market name.
func validToken(s string) bool { return validName(s) && strings.IndexByte(s, '/') < 0 }

// Trade is one fill: the taker (incoming order) against one maker (resting
// order), at the maker's price.
type Trade struct {
	Seq        uint64 // trade number, 1-based, across all markets
	Market     string
	MakerOrder string
	TakerOrder string
	Maker      string // maker's account
	Taker      string // taker's account
	TakerSide  Side
	Price      uint64 // the maker's price
	Quantity   uint64 // base units moved from seller to buyer
	Quote      uint64 // quote units moved from buyer to seller: floor(Quantity × Price / 10^6)
	// MakerRemaining is what the maker still has open after this fill;
	// zero means the maker order is now filled and closed. A non-zero
	// remainder that is dust is closed too, right after the fill, and the
	// maker is then listed in PlaceResult.DustCancelled.
	MakerRemaining uint64
}

// OrderInfo describes an order: an open one from the read methods, a closed
// one in Cancel's and Place's results.
type OrderInfo struct {
	ID        string
	Account   string
	Market    string
	Side      Side
	Type      OrderType
	Price     uint64
	Quantity  uint64 // original quantity
	Filled    uint64
	Remaining uint64 // Quantity - Filled while open; what was left when it closed
	Seq       uint64 // acceptance number: the engine's order of arrival
	Status    Status
}

// PlaceResult is what happened to an accepted order.
type PlaceResult struct {
	Seq    uint64 // acceptance number given to the order
	Trades []Trade
	// SelfTradeCancelled lists resting orders of the taker's own account
	// that the taker would have filled against: they were cancelled (their
	// reservations released) and matching went on (DESIGN §5).
	SelfTradeCancelled []OrderInfo
	// DustCancelled lists resting orders that a fill of this order left
	// with a remainder too small to pay one quote unit at their price
	// (dust, see Dust): such a remainder could never trade, so it is
	// cancelled and its reservation released right after the fill.
	DustCancelled []OrderInfo
	Filled        uint64
	Remaining     uint64
	// Status is StatusFilled, StatusOpen or StatusPartiallyFilled (a limit
	// remainder rests), or StatusCancelled (a market or IOC order's
	// remainder, or a dust remainder, was cancelled and its reservation
	// released).
	Status Status
	// RemainderDust reports that the order's remainder was cancelled
	// because it was dust: either its next fill would have paid zero quote
	// units at the best resting price (matching stops there, whatever the
	// type), or the remainder of an order that rests (limit, post-only)
	// could not pay one quote unit at its own limit. Status is then
	// StatusCancelled. (A market or IOC remainder that is cancelled only
	// because nothing more crosses does not set it.)
	RemainderDust bool
}

// Rested reports whether a remainder of the order now rests in the book.
func (r *PlaceResult) Rested() bool {
	return r.Status == StatusOpen || r.Status == StatusPartiallyFilled
}

func (r *PlaceResult) reset() {
	r.Seq, r.Filled, r.Remaining, r.Status = 0, 0, 0, 0
	r.Trades = r.Trades[:0]
	r.SelfTradeCancelled = r.SelfTradeCancelled[:0]
	r.DustCancelled = r.DustCancelled[:0]
	r.RemainderDust = false
}

// Dust reports whether quantity base units at price pay zero quote units
// (floor(quantity × price / 10^6) = 0). No fill may be dust: the seller
// would give tokens for nothing. So an order that is dust at its own price
// is refused (ErrZeroQuoteAmount), matching stops before a fill that would
// be dust, and no order rests with a dust remainder.
//
// Invariant: every resting order's remainder is not dust at its price. A
// fill against a resting order therefore is dust only when the taker's
// remainder is smaller than the maker's.
func Dust(quantity, price uint64) bool {
	hi, lo := bits.Mul64(quantity, price)
	return hi == 0 && lo < amount.Scale
}

// balance is one account's holding of one token. Invariant: reserved equals
// what the account's open orders hold of that token (see holds).
type balance struct {
	available uint64
	reserved  uint64
}

type account struct {
	name string
	// bal is indexed by token number; it grows when the account first
	// touches a token. Tokens are few, so this dense slice beats a map on
	// the fill path.
	bal []balance
	// open counts resting orders; head and tail link them in acceptance
	// order through order.acctPrev/acctNext.
	open       int
	head, tail uint32
}

type token struct {
	name string
	// supply is deposits minus withdrawals. Invariant: the sum over
	// accounts of available+reserved of this token equals supply, and
	// supply <= amount.Max, so no balance arithmetic can overflow.
	supply uint64
}

// Engine is the orderbook state machine. Create it with New.
type Engine struct {
	cfg Config

	accounts   []account
	accountIdx map[string]uint32
	acctByName []uint32 // cache of sortedAccounts

	tokens   []token
	tokenIdx map[string]uint32

	markets   []market
	marketIdx map[string]uint32
	// The market of the last accepted order: a cache in front of marketIdx.
	lastMarketName string
	lastMarket     uint32

	// orders is a slab of order records; index 0 is never used, so 0 means
	// "none" in the intrusive links. Free slots are chained through next.
	orders    []order
	freeOrder uint32
	orderIDs  []string // id of the order in the same slab slot
	ids       idIndex  // open orders by id
	openCount int

	orderSeq uint64 // acceptance number of the last accepted order
	tradeSeq uint64 // number of the last trade
}

// New returns an empty engine. It panics on an invalid config: configs come
// from the operator's setup, not from users, so that is a programmer error.
func New(cfg Config) *Engine {
	if err := cfg.ValidateBasic(); err != nil {
		panic(err)
	}
	return &Engine{
		cfg:        cfg,
		accountIdx: map[string]uint32{},
		tokenIdx:   map[string]uint32{},
		marketIdx:  map[string]uint32{},
		orders:     make([]order, 1, 1024),
		orderIDs:   make([]string, 1, 1024),
		ids:        newIDIndex(),
	}
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

// internAccount returns the number of an account, creating it.
func (e *Engine) internAccount(name string) uint32 {
	if i, ok := e.accountIdx[name]; ok {
		return i
	}
	i := uint32(len(e.accounts))
	e.accounts = append(e.accounts, account{name: name})
	e.accountIdx[name] = i
	return i
}

func (e *Engine) internToken(name string) uint32 {
	if i, ok := e.tokenIdx[name]; ok {
		return i
	}
	i := uint32(len(e.tokens))
	e.tokens = append(e.tokens, token{name: name})
	e.tokenIdx[name] = i
	return i
}

func (e *Engine) internMarket(name, base, quote string) uint32 {
	if i, ok := e.marketIdx[name]; ok {
		return i
	}
	i := uint32(len(e.markets))
	e.markets = append(e.markets, market{
		name:  name,
		base:  e.internToken(base),
		quote: e.internToken(quote),
		bids:  bookSide{ascending: true},
	})
	e.marketIdx[name] = i
	return i
}

// bal returns the balance record of (account, token), growing the account's
// slice when it first touches the token.
func (e *Engine) bal(a, t uint32) *balance {
	acc := &e.accounts[a]
	if int(t) >= len(acc.bal) {
		acc.bal = append(acc.bal, make([]balance, int(t)+1-len(acc.bal))...)
	}
	return &acc.bal[t]
}

// available returns the available balance of a known account and token
// number without growing anything.
func (e *Engine) availableOf(a, t uint32) uint64 {
	if int(t) >= len(e.accounts[a].bal) {
		return 0
	}
	return e.accounts[a].bal[t].available
}

// Deposit credits amount of token to account's available balance. The
// replica calls it for genesis balances and bridge-signed deposits.
func (e *Engine) Deposit(acct, tok string, amt uint64) error {
	if !validName(acct) {
		return ErrInvalidAccount
	}
	if !validToken(tok) {
		return ErrInvalidToken
	}
	if amt == 0 {
		return ErrZeroAmount
	}
	if amt > amount.Max {
		return ErrAmountTooLarge
	}
	var supply uint64
	if t, ok := e.tokenIdx[tok]; ok {
		supply = e.tokens[t].supply
	}
	if amt > amount.Max-supply {
		return ErrSupplyOverflow
	}
	a, t := e.internAccount(acct), e.internToken(tok)
	e.tokens[t].supply += amt
	e.bal(a, t).available += amt
	return nil
}

// Withdraw debits amount of token from account's available balance (funds
// reserved by open orders cannot be withdrawn). Recording the withdrawal so
// a bridge can pay it out is the replica's job.
func (e *Engine) Withdraw(acct, tok string, amt uint64) error {
	if !validName(acct) {
		return ErrInvalidAccount
	}
	if !validToken(tok) {
		return ErrInvalidToken
	}
	if amt == 0 {
		return ErrZeroAmount
	}
	if amt > amount.Max {
		return ErrAmountTooLarge
	}
	a, okA := e.accountIdx[acct]
	t, okT := e.tokenIdx[tok]
	if !okA || !okT || e.availableOf(a, t) < amt {
		return ErrInsufficientBalance
	}
	e.accounts[a].bal[t].available -= amt
	e.tokens[t].supply -= amt
	return nil
}

// Place submits an order: it is validated, its funds reserved, matched
// against the book, and its remainder rests (limit) or is released
// (market). On error nothing changed. The result's slices are freshly
// allocated; PlaceInto reuses them instead.
func (e *Engine) Place(o Order) (PlaceResult, error) {
	var r PlaceResult
	err := e.PlaceInto(o, &r)
	return r, err
}

// PlaceInto is Place writing into res, whose slices are truncated and reused,
// so a loop that applies many orders with one PlaceResult allocates nothing
// per order once the slices have grown. res is reset even on error.
func (e *Engine) PlaceInto(o Order, res *PlaceResult) error {
	res.reset()
	// Most orders go to the market of the previous one: comparing the
	// name is cheaper than hashing it, and a known market is valid.
	mi, known := e.lastMarket, e.lastMarketName == o.Market && o.Market != ""
	if !known {
		mi, known = e.marketIdx[o.Market]
	}
	if known {
		if err := o.validateKnownMarket(); err != nil {
			return err
		}
	} else if err := o.ValidateBasic(); err != nil {
		return err
	}
	tag := e.ids.tag(o.ID)
	if e.ids.find(e.orderIDs, o.ID, tag) != 0 {
		return ErrDuplicateOrderID
	}
	a, ok := e.accountIdx[o.Account]
	if !ok {
		// An unknown account has no balance; every order needs a
		// non-zero reservation (the dust check above).
		return ErrInsufficientBalance
	}
	if o.Type.Rests() && e.accounts[a].open >= e.cfg.OpenOrdersPerAccountMax {
		return ErrTooManyOpenOrders
	}
	// The reservation: a buy holds Quote(quantity, limit) of quote, a sell
	// holds quantity of base. ValidateBasic proved Quote does not overflow.
	need := o.Quantity
	if o.Side == Buy {
		need = quoteOf(o.Quantity, o.Price)
	}
	var resT uint32
	if known {
		resT = e.markets[mi].base
		if o.Side == Buy {
			resT = e.markets[mi].quote
		}
	} else {
		base, quote, _ := SplitMarket(o.Market) // checked by ValidateBasic
		resName := base
		if o.Side == Buy {
			resName = quote
		}
		var ok bool
		if resT, ok = e.tokenIdx[resName]; !ok {
			// A token nobody holds: no balance to reserve. The other
			// token may well be unknown yet; it is created on acceptance.
			return ErrInsufficientBalance
		}
	}
	if e.availableOf(a, resT) < need {
		return ErrInsufficientBalance
	}
	// The two order types that may refuse to trade decide before anything
	// changes, so a refusal leaves the state as it was. An unknown market
	// has an empty book: nothing to take, nothing to fill against.
	if known {
		switch o.Type {
		case PostOnly:
			if e.crosses(&e.markets[mi], o.Side, o.Price) {
				return ErrWouldTakeLiquidity
			}
		case FOK:
			if e.fillable(&e.markets[mi], a, o.Side, o.Price, o.Quantity) < o.Quantity {
				return ErrCannotFillInFull
			}
		}
	} else if o.Type == FOK {
		return ErrCannotFillInFull
	}

	// Accepted: from here on nothing can fail.
	if !known {
		base, quote, _ := SplitMarket(o.Market)
		mi = e.internMarket(o.Market, base, quote)
	}
	e.lastMarket, e.lastMarketName = mi, o.Market
	e.bal(a, e.markets[mi].base)
	e.bal(a, e.markets[mi].quote) // both tokens present, so fills index directly
	rb := &e.accounts[a].bal[resT]
	rb.available -= need
	rb.reserved += need
	e.orderSeq++
	res.Seq = e.orderSeq

	t := taker{
		id: o.ID, tag: tag, acct: a, side: o.Side, limit: o.Price,
		remaining: o.Quantity, reserved: need,
	}
	mk := &e.markets[mi]
	if o.Side == Buy {
		e.matchBuy(mk, &t, res)
	} else {
		e.matchSell(mk, &t, res)
	}
	res.Filled = o.Quantity - t.remaining
	res.Remaining = t.remaining
	if t.remaining > 0 && o.Type.Rests() && Dust(t.remaining, o.Price) {
		res.RemainderDust = true // too small to rest
	}
	switch {
	case t.remaining == 0:
		// A buy filled in full holds Quote(0, limit) = 0: all its
		// reservation was consumed or refunded fill by fill.
		res.Status = StatusFilled
	case o.Type == FOK:
		panic("matcher: fill-or-kill order left unfilled after its fill check")
	case o.Type.Rests() && !res.RemainderDust:
		e.rest(mi, &t, o.Quantity, res.Seq)
		res.Status = StatusOpen
		if res.Filled > 0 {
			res.Status = StatusPartiallyFilled
		}
	default:
		// Market and IOC orders (immediate-or-cancel), and a dust
		// remainder of any type: give back what is left.
		rb := &e.accounts[a].bal[resT]
		rb.reserved -= t.reserved
		rb.available += t.reserved
		res.Status = StatusCancelled
	}
	return nil
}

// Cancel cancels an open order of account and releases what it holds. It
// returns the order as it was when cancelled, with StatusCancelled.
func (e *Engine) Cancel(acct, orderID string) (OrderInfo, error) {
	oi := e.ids.find(e.orderIDs, orderID, e.ids.tag(orderID))
	if oi == 0 {
		return OrderInfo{}, ErrUnknownOrder
	}
	if e.accounts[e.orders[oi].acct].name != acct {
		return OrderInfo{}, ErrNotOwner
	}
	info := e.info(oi)
	info.Status = StatusCancelled
	e.cancelResting(oi)
	return info, nil
}

// CancelAll cancels every open order of account in market, or in every
// market when market is empty, releases what they hold, and returns them as
// they were when cancelled (StatusCancelled) in acceptance order. An unknown
// account, an unknown market or no open order cancels nothing; that is not
// an error (the caller asked for "none left open", and none is).
func (e *Engine) CancelAll(acct, market string) []OrderInfo {
	a, ok := e.accountIdx[acct]
	if !ok {
		return nil
	}
	var out []OrderInfo
	for i := e.accounts[a].head; i != 0; {
		next := e.orders[i].acctNext // cancelResting frees slot i
		if market == "" || e.markets[e.orders[i].market].name == market {
			out = append(out, e.closedInfo(i, StatusCancelled))
			e.cancelResting(i)
		}
		i = next
	}
	return out
}

// quoteOf is amount.Quote for values already known not to overflow, with a
// fast path for the common case where the product fits 64 bits (division by
// a constant compiles to a multiply). Overflow here is a programmer error.
func quoteOf(q, p uint64) uint64 {
	hi, lo := bits.Mul64(q, p)
	if hi == 0 {
		return lo / amount.Scale
	}
	if hi >= amount.Scale {
		panic("matcher: quote overflow on a checked path")
	}
	v, _ := bits.Div64(hi, lo, amount.Scale)
	return v
}
