package eip712

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client/ethsig"
)

// The vectors in testdata/vectors/eip712.json were computed by ethers
// (testdata/vectorgen/gen.mjs), an implementation that shares no code with
// this package.

type vectorFile struct {
	TypeStrings map[string]string `json:"type_strings"`
	Keys        []struct {
		PrivateKey string `json:"private_key"`
		Address    string `json:"address"`
	} `json:"keys"`
	Cases []vectorCase `json:"cases"`
}

type vectorCase struct {
	Name        string             `json:"name"`
	PrimaryType string             `json:"primaryType"`
	Domain      DomainJSON         `json:"domain"`
	Types       map[string][]Field `json:"types"`
	Message     map[string]string  `json:"message"`
	Separator   string             `json:"domain_separator"`
	StructHash  string             `json:"struct_hash"`
	Digest      string             `json:"digest"`
	Signature   string             `json:"signature"`
	Address     string             `json:"address"`
	TypedDataV4 json.RawMessage    `json:"typed_data_v4"`
	V4Digest    string             `json:"typed_data_v4_digest"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	b, err := os.ReadFile("../../testdata/vectors/eip712.json")
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 10 {
		t.Fatalf("only %d cases in the vector file", len(f.Cases))
	}
	return f
}

func mustU64(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("vector value %q: %v", s, err)
	}
	return v
}

func mustB32(t *testing.T, s string) [32]byte {
	t.Helper()
	b := common.FromHex(s)
	if len(b) != 32 {
		t.Fatalf("vector bytes32 %q has %d bytes", s, len(b))
	}
	return [32]byte(b)
}

func mustAddr(t *testing.T, s string) common.Address {
	t.Helper()
	if !common.IsHexAddress(s) {
		t.Fatalf("vector address %q", s)
	}
	return common.HexToAddress(s)
}

// messageOf builds our static struct for a vector's message.
func messageOf(t *testing.T, c vectorCase) Message {
	m := c.Message
	switch c.PrimaryType {
	case "Order":
		return &Order{Trader: mustAddr(t, m["trader"]), Market: m["market"], Side: m["side"], OrderType: m["orderType"],
			Quantity: mustU64(t, m["quantity"]), Price: mustU64(t, m["price"]), Nonce: mustU64(t, m["nonce"]), Expiry: mustU64(t, m["expiry"])}
	case "Cancel":
		return &Cancel{Trader: mustAddr(t, m["trader"]), OrderID: mustB32(t, m["orderId"]), Nonce: mustU64(t, m["nonce"]), Expiry: mustU64(t, m["expiry"])}
	case "CancelAll":
		return &CancelAll{Trader: mustAddr(t, m["trader"]), Market: m["market"], Nonce: mustU64(t, m["nonce"]), Expiry: mustU64(t, m["expiry"])}
	case "Withdraw":
		return &Withdraw{Trader: mustAddr(t, m["trader"]), Token: m["token"], Amount: mustU64(t, m["amount"]),
			Recipient: mustAddr(t, m["recipient"]), Nonce: mustU64(t, m["nonce"]), Expiry: mustU64(t, m["expiry"])}
	case "Lock":
		return &Lock{App: m["app"], View: mustU64(t, m["view"]), Index: mustU64(t, m["index"]), ChainingHash: mustB32(t, m["chainingHash"])}
	case "Finalize":
		return &Finalize{App: m["app"], View: mustU64(t, m["view"]), Index: mustU64(t, m["index"]), ChainingHash: mustB32(t, m["chainingHash"])}
	case "Balance":
		return &Balance{App: m["app"], Account: mustAddr(t, m["account"]), Token: m["token"], Balance: mustU64(t, m["balance"]), Index: mustU64(t, m["index"])}
	case "Withdrawal":
		return &Withdrawal{App: m["app"], ID: mustB32(t, m["id"]), Trader: mustAddr(t, m["trader"]), Token: m["token"],
			Amount: mustU64(t, m["amount"]), Recipient: mustAddr(t, m["recipient"]), Index: mustU64(t, m["index"])}
	}
	t.Fatalf("unknown primary type %q", c.PrimaryType)
	return nil
}

func hexOf(b [32]byte) string { return "0x" + common.Bytes2Hex(b[:]) }

func TestTypeStringsMatchEthers(t *testing.T) {
	f := loadVectors(t)
	ours := map[string]string{"Order": TypeOrder, "Cancel": TypeCancel, "CancelAll": TypeCancelAll, "Withdraw": TypeWithdraw, "Lock": TypeLock,
		"Finalize": TypeFinalize, "Balance": TypeBalance, "Withdrawal": TypeWithdrawal}
	if len(f.TypeStrings) != len(ours) {
		t.Fatalf("vector file has %d types, we have %d", len(f.TypeStrings), len(ours))
	}
	for name, s := range ours {
		if f.TypeStrings[name] != s {
			t.Errorf("%s:\n ours   %s\n ethers %s", name, s, f.TypeStrings[name])
		}
	}
}

func TestDigestsMatchEthers(t *testing.T) {
	f := loadVectors(t)
	seen := map[string]bool{}
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			seen[c.PrimaryType] = true
			if c.Domain.Name != DomainName || c.Domain.Version != DomainVersion {
				t.Fatalf("vector domain %+v", c.Domain)
			}
			d := NewDomain(c.Domain.ChainID)
			if got := hexOf(d.Separator()); got != c.Separator {
				t.Errorf("domain separator %s, ethers %s", got, c.Separator)
			}
			m := messageOf(t, c)
			if got := hexOf(m.StructHash()); got != c.StructHash {
				t.Errorf("struct hash %s, ethers %s", got, c.StructHash)
			}
			digest := d.Digest(m)
			if got := hexOf(digest); got != c.Digest {
				t.Errorf("digest %s, ethers %s", got, c.Digest)
			}
			// The field lists we would hand a wallet are the ones ethers hashed.
			fields, ok := TypeFields(c.PrimaryType)
			if !ok || !reflect.DeepEqual(fields, c.Types[c.PrimaryType]) {
				t.Errorf("fields %v, ethers %v", fields, c.Types[c.PrimaryType])
			}
			if c.Signature == "" {
				return
			}
			sig, err := ethsig.ParseHex(c.Signature)
			if err != nil {
				t.Fatal(err)
			}
			who, err := ethsig.Recover(digest, sig)
			if err != nil {
				t.Fatal(err)
			}
			if who != mustAddr(t, c.Address) {
				t.Errorf("recovered %s, signer %s", who, c.Address)
			}
			// Both sides sign deterministically (RFC 6979, low s), so our
			// signature with the same key is byte-identical.
			for _, k := range f.Keys {
				if k.Address != c.Address {
					continue
				}
				key, err := ethsig.ParseKey(k.PrivateKey)
				if err != nil {
					t.Fatal(err)
				}
				ours, err := ethsig.Sign(key, digest)
				if err != nil {
					t.Fatal(err)
				}
				if "0x"+common.Bytes2Hex(ours) != c.Signature {
					t.Errorf("our signature %x, ethers %s", ours, c.Signature)
				}
			}
		})
	}
	for _, pt := range []string{"Order", "Cancel", "CancelAll", "Withdraw", "Lock", "Finalize", "Balance", "Withdrawal"} {
		if !seen[pt] {
			t.Errorf("no vector for %s", pt)
		}
	}
}

// normalizeV4 decodes an eth_signTypedData_v4 JSON and writes the domain's
// chainId as a decimal string: ethers writes it as a hex quantity ("0x7a69"),
// we as a JSON number, and wallets accept both.
func normalizeV4(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var v map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	dom := v["domain"].(map[string]any)
	switch id := dom["chainId"].(type) {
	case json.Number:
		dom["chainId"] = id.String()
	case string:
		n, ok := new(big.Int).SetString(strings.TrimPrefix(id, "0x"), 16)
		if !ok || !strings.HasPrefix(id, "0x") {
			t.Fatalf("chainId %q", id)
		}
		dom["chainId"] = n.String()
	default:
		t.Fatalf("chainId of type %T", id)
	}
	return v
}

func TestTypedDataJSONMatchesEthersPayload(t *testing.T) {
	f := loadVectors(t)
	n := 0
	for _, c := range f.Cases {
		if c.TypedDataV4 == nil {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			d := NewDomain(c.Domain.ChainID)
			var ours []byte
			var err error
			switch m := messageOf(t, c).(type) {
			case *Order:
				ours, err = OrderTypedData(d, m)
			case *Cancel:
				ours, err = CancelTypedData(d, m)
			case *CancelAll:
				ours, err = CancelAllTypedData(d, m)
			case *Withdraw:
				ours, err = WithdrawTypedData(d, m)
			default:
				t.Fatalf("typed data for %T", m)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := normalizeV4(t, ours), normalizeV4(t, c.TypedDataV4); !reflect.DeepEqual(got, want) {
				t.Errorf("our eth_signTypedData_v4 JSON\n %s\ndiffers from ethers' getPayload\n %s", ours, c.TypedDataV4)
			}
			if c.V4Digest != c.Digest {
				t.Errorf("ethers' digest of its own payload %s != %s", c.V4Digest, c.Digest)
			}
			// The second oracle hashes our JSON as a wallet would.
			if got := gethDigestOfJSON(t, ours); got != c.Digest {
				t.Errorf("go-ethereum digest of our JSON %s, ethers %s", got, c.Digest)
			}
		})
	}
	if n < 3 {
		t.Fatalf("only %d typed-data payloads in the vectors", n)
	}
}

func TestDescription(t *testing.T) {
	desc := NewDomain(DefaultChainID).Description()
	b, err := json.Marshal(desc)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Domain map[string]any                 `json:"domain"`
		Types  map[string][]map[string]string `json:"types"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Domain["name"] != "seqbook" || back.Domain["version"] != "1" || back.Domain["chainId"] != float64(31337) {
		t.Errorf("domain %v", back.Domain)
	}
	if len(back.Types) != 5 {
		t.Errorf("types %v", back.Types)
	}
	// Re-encoding each listed type gives back the exact type string hashed.
	for name, want := range map[string]string{"EIP712Domain": TypeDomain, "Order": TypeOrder, "Cancel": TypeCancel, "CancelAll": TypeCancelAll, "Withdraw": TypeWithdraw} {
		var parts []string
		for _, f := range back.Types[name] {
			parts = append(parts, f["type"]+" "+f["name"])
		}
		if got := name + "(" + strings.Join(parts, ",") + ")"; got != want {
			t.Errorf("%s re-encodes to %s", name, got)
		}
	}
}

func TestParseTypeRejects(t *testing.T) {
	for _, s := range []string{
		"", "Order", "(uint256 a)", "Order(uint256 a", "Order(uint256)", "Order(uint256 a,)", "Order(uint256  a)",
		"Order(uint7 a)", "Order(uint264 a)", "Order(bytes33 a)", "Order(bytes0 a)", "Order(Inner a)", "Order(uint256[] a)",
		"Order(uint256 a,string a)", "1Order(uint256 a)", "Order(uint256 1a)", "Order(uint08 a)",
	} {
		if _, _, err := ParseType(s); err == nil {
			t.Errorf("ParseType(%q) accepted", s)
		}
	}
	name, fields, err := ParseType("Empty()")
	if err != nil || name != "Empty" || len(fields) != 0 {
		t.Errorf("Empty(): %v %v %v", name, fields, err)
	}
}

func FuzzParseType(f *testing.F) {
	for _, s := range []string{TypeOrder, TypeDomain, "A()", "A(uint256 a,bytes32 b)", "A(uint7 a)", "(", ")"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, fields, err := ParseType(s)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to the same text.
		parts := make([]string, len(fields))
		for i, fl := range fields {
			parts[i] = fl.Type + " " + fl.Name
		}
		if got := name + "(" + strings.Join(parts, ",") + ")"; got != s {
			t.Fatalf("%q re-encodes to %q", s, got)
		}
	})
}

// Sanity: the vectors' keys are what they claim.
func TestVectorKeys(t *testing.T) {
	for _, k := range loadVectors(t).Keys {
		key, err := crypto.HexToECDSA(strings.TrimPrefix(k.PrivateKey, "0x"))
		if err != nil {
			t.Fatal(err)
		}
		if got := crypto.PubkeyToAddress(key.PublicKey).Hex(); got != k.Address {
			t.Errorf("key %s is %s, file says %s", fmt.Sprint(k.PrivateKey[:6]), got, k.Address)
		}
	}
}
