package main

import (
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/seqbook/seqbook/client/bls"
	"github.com/seqbook/seqbook/client/keys"
)

// `seqbook keys` makes and inspects key files: trader keys (secp256k1, an
// Ethereum account) and BLS keys (sequencer nodes and replicas).

func init() {
	register(command{name: "keys", summary: "make and inspect trader (secp256k1) and BLS key files", run: runKeys})
}

func keysUsage(w io.Writer) {
	fmt.Fprintln(w, `Usage: seqbook keys <action> [flags]   (seqbook keys <action> --help)

Actions:
  trader   --out FILE [--seed S]   make a trader key file, print its address
  bls      --out FILE [--seed S]   make a BLS key file, print its public key and proof of possession
  address  --key FILE              print the address of a trader key file
  bls-pub  --key FILE              print the public key and proof of possession of a BLS key file

Key files hold the secret as 0x hex with mode 0600; existing files are never
overwritten. A BLS key file starts with a # line saying what it is, so that
it is refused where a trader key is wanted (both are 32 bytes of hex). --seed derives the key from a string instead of randomness:
anyone who knows the seed has the key, so use it for tests and localnets only.`)
}

func runKeys(args []string) int {
	if len(args) == 0 {
		keysUsage(os.Stderr)
		return 2
	}
	action, rest := args[0], args[1:]
	switch action {
	case "-h", "--help", "help":
		keysUsage(os.Stdout)
		return 0
	case "trader":
		return keysTrader(rest)
	case "bls":
		return keysBLS(rest)
	case "address":
		return keysAddress(rest)
	case "bls-pub":
		return keysBLSPub(rest)
	}
	fmt.Fprintf(os.Stderr, "seqbook keys: unknown action %q\n\n", action)
	keysUsage(os.Stderr)
	return 2
}

// parseKeysFlags parses fs and reports a usage error (exit 2) or a help
// request (exit 0) through done.
func parseKeysFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if code, done := parseOrExit(fs, args); done {
		return code, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}

func keysTrader(args []string) int {
	fs := flag.NewFlagSet("seqbook keys trader", flag.ContinueOnError)
	out := fs.String("out", "", "key file to create (required; never overwritten)")
	seed := fs.String("seed", "", "derive the key from this string (INSECURE: tests and localnets only)")
	if code, done := parseKeysFlags(fs, args); done {
		return code
	}
	if *out == "" {
		return fail("keys trader", errors.New("--out FILE is required"))
	}
	var k *ecdsa.PrivateKey
	if *seed != "" {
		k = keys.DeterministicTrader(*seed)
	} else {
		var err error
		if k, err = keys.GenerateTrader(); err != nil {
			return fail("keys trader", err)
		}
	}
	if err := keys.WriteTrader(*out, k); err != nil {
		return fail("keys trader", err)
	}
	fmt.Fprintf(os.Stderr, "wrote a trader key to %s (mode 0600)\n", *out)
	fmt.Printf("address: %s\n", keys.Address(k).Hex())
	return 0
}

func keysBLS(args []string) int {
	fs := flag.NewFlagSet("seqbook keys bls", flag.ContinueOnError)
	out := fs.String("out", "", "key file to create (required; never overwritten)")
	seed := fs.String("seed", "", "derive the key from this string (INSECURE: tests and localnets only)")
	if code, done := parseKeysFlags(fs, args); done {
		return code
	}
	if *out == "" {
		return fail("keys bls", errors.New("--out FILE is required"))
	}
	var sk *bls.SecretKey
	if *seed != "" {
		sk = keys.DeterministicBLS(*seed)
	} else {
		var err error
		if sk, err = keys.GenerateBLS(); err != nil {
			return fail("keys bls", err)
		}
	}
	if err := keys.WriteBLS(*out, sk); err != nil {
		return fail("keys bls", err)
	}
	fmt.Fprintf(os.Stderr, "wrote a BLS key to %s (mode 0600)\n", *out)
	printBLSPublic(sk)
	return 0
}

// printBLSPublic prints what a cluster file lists for a member, under the
// cluster file's field names.
func printBLSPublic(sk *bls.SecretKey) {
	fmt.Printf("bls_pubkey: %s\n", sk.PublicKey().Hex())
	fmt.Printf("bls_pop: %s\n", sk.ProvePossession().Hex())
}

func keysAddress(args []string) int {
	fs := flag.NewFlagSet("seqbook keys address", flag.ContinueOnError)
	path := fs.String("key", "", "trader key file (required)")
	if code, done := parseKeysFlags(fs, args); done {
		return code
	}
	if *path == "" {
		return fail("keys address", errors.New("--key FILE is required"))
	}
	k, err := keys.LoadTrader(*path)
	if err != nil {
		return fail("keys address", err)
	}
	fmt.Println(keys.Address(k).Hex())
	return 0
}

func keysBLSPub(args []string) int {
	fs := flag.NewFlagSet("seqbook keys bls-pub", flag.ContinueOnError)
	path := fs.String("key", "", "BLS key file (required)")
	if code, done := parseKeysFlags(fs, args); done {
		return code
	}
	if *path == "" {
		return fail("keys bls-pub", errors.New("--key FILE is required"))
	}
	sk, err := keys.LoadBLS(*path)
	if err != nil {
		return fail("keys bls-pub", err)
	}
	printBLSPublic(sk)
	return 0
}
