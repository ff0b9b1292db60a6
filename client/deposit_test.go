package client

import (
	"errors"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/seqbook/seqbook/client/ethsig"
	"github.com/seqbook/seqbook/client/obapi"
)

func TestSignDeposit(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := obapi.Deposit{ChainID: 31337, App: "orderbook", Account: common.HexToAddress("0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d"),
		Token: "ETH", Amount: 2_000_000, Nonce: 7, Expiry: 1_800_000_000}
	req, id, err := SignDeposit(key, p)
	if err != nil {
		t.Fatal(err)
	}
	want := (&obapi.Deposit{ChainID: 31337, App: "orderbook", Account: p.Account, Token: "ETH", Amount: 2_000_000, Nonce: 7, Expiry: 1_800_000_000}).Digest()
	if id != want {
		t.Fatalf("id %x, want the deposit digest %x", id, want)
	}
	sig, err := ethsig.ParseHex(req.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if err := ethsig.Verify(id, sig, ethsig.Address(key)); err != nil {
		t.Fatal(err)
	}
	if req.Account != p.Account.Hex() || req.Amount != "2000000" || req.Nonce != "7" || req.Expiry != "1800000000" {
		t.Fatalf("request %+v", req)
	}
	for _, bad := range []obapi.Deposit{
		{ChainID: 1, App: "a", Token: "", Amount: 1, Nonce: 1, Expiry: 1},
		{ChainID: 1, App: "a", Token: "ETH", Amount: 0, Nonce: 1, Expiry: 1},
		{ChainID: 1, App: "a", Token: "ETH", Amount: 1, Nonce: 0, Expiry: 1},
		{ChainID: 0, App: "a", Token: "ETH", Amount: 1, Nonce: 1, Expiry: 1},
	} {
		if _, _, err := SignDeposit(key, bad); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
