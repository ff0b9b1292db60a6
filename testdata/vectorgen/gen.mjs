// Generates seqbook's golden signing vectors with implementations that share
// no code with ours: ethers (EIP-712 hashing, secp256k1 signing, EIP-191)
// and noble-curves (BLS12-381). The Go tests read only the JSON this writes
// to ../vectors/, so `go test` never needs node.
//
//   cd testdata/vectorgen && npm ci && node gen.mjs
//
// Everything here is deterministic (fixed keys, RFC 6979 signatures), so a
// rerun with the pinned versions rewrites byte-identical files.
//
// The EIP-712 types below are typed in again from DESIGN.md on purpose: they
// are not read from the Go code, so a typo on either side shows up as a
// digest mismatch.

import { writeFileSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { Wallet, TypedDataEncoder, hashMessage, getAddress, keccak256, toUtf8Bytes, verifyMessage, verifyTypedData } from "ethers";
import { bls12_381 } from "@noble/curves/bls12-381.js";

const out = new URL("../vectors/", import.meta.url);
const pkg = JSON.parse(readFileSync(new URL("./package.json", import.meta.url)));
const ethersVersion = JSON.parse(readFileSync(new URL("./node_modules/ethers/package.json", import.meta.url))).version;
const nobleVersion = JSON.parse(readFileSync(new URL("./node_modules/@noble/curves/package.json", import.meta.url))).version;

function write(name, obj) {
  writeFileSync(new URL(name, out), JSON.stringify(obj, null, 2) + "\n");
  console.log("wrote testdata/vectors/" + name);
}
function check(cond, what) {
  if (!cond) throw new Error("self-check failed: " + what);
}
const hex = (b) => "0x" + Buffer.from(b).toString("hex");
const sha256 = (s) => createHash("sha256").update(s).digest();

// ---------------------------------------------------------------- keys
// Hardhat/anvil's first dev account: a famous, worthless key.
const devWallet = new Wallet("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
// The Zellular orderbook tutorial's two users (examples/orderbook/02_place_order.py).
const user1 = new Wallet("0x4b7f4de058ab4d3629f438c1728ac77bea7f4ab0099218be77242f8ba099cca7");
const user2 = new Wallet("0x28a3947aa36917ca22f56765c67bedc2fdbbd2daf73f8a2cdb1c0dd252cefc3c");
check(user1.address === "0xc66F8Fba940064B5bA8d437d6fF829E60134230E", "tutorial user1 address");
check(user2.address === "0x7F3b0b1530A0d0Ce3D721a6e976C7eA4296A0f5d", "tutorial user2 address");

// ---------------------------------------------------------------- EIP-712
const TYPES = {
  Order: [
    { name: "trader", type: "address" },
    { name: "market", type: "string" },
    { name: "side", type: "string" },
    { name: "orderType", type: "string" },
    { name: "quantity", type: "uint256" },
    { name: "price", type: "uint256" },
    { name: "nonce", type: "uint64" },
    { name: "expiry", type: "uint64" },
  ],
  Cancel: [
    { name: "trader", type: "address" },
    { name: "orderId", type: "bytes32" },
    { name: "nonce", type: "uint64" },
    { name: "expiry", type: "uint64" },
  ],
  CancelAll: [
    { name: "trader", type: "address" },
    { name: "market", type: "string" },
    { name: "nonce", type: "uint64" },
    { name: "expiry", type: "uint64" },
  ],
  Withdraw: [
    { name: "trader", type: "address" },
    { name: "token", type: "string" },
    { name: "amount", type: "uint256" },
    { name: "recipient", type: "address" },
    { name: "nonce", type: "uint64" },
    { name: "expiry", type: "uint64" },
  ],
  Lock: [
    { name: "app", type: "string" },
    { name: "view", type: "uint64" },
    { name: "index", type: "uint64" },
    { name: "chainingHash", type: "bytes32" },
  ],
  Finalize: [
    { name: "app", type: "string" },
    { name: "view", type: "uint64" },
    { name: "index", type: "uint64" },
    { name: "chainingHash", type: "bytes32" },
  ],
  Balance: [
    { name: "app", type: "string" },
    { name: "account", type: "address" },
    { name: "token", type: "string" },
    { name: "balance", type: "uint256" },
    { name: "index", type: "uint64" },
  ],
  Withdrawal: [
    { name: "app", type: "string" },
    { name: "id", type: "bytes32" },
    { name: "trader", type: "address" },
    { name: "token", type: "string" },
    { name: "amount", type: "uint256" },
    { name: "recipient", type: "address" },
    { name: "index", type: "uint64" },
  ],
};
const TRADER_TYPES = new Set(["Order", "Cancel", "CancelAll", "Withdraw"]);
const domainFor = (chainId) => ({ name: "seqbook", version: "1", chainId });

const MAX63 = "9223372036854775807"; // 2^63-1: the largest amount
const MAX64 = "18446744073709551615"; // 2^64-1: the largest uint64 nonce/expiry
const other = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"; // hardhat account #1

// Messages use decimal strings for integers and 0x hex for bytes32, the
// shape eth_signTypedData_v4 JSON carries.
const cases = [
  ["order-buy-limit", 31337, "Order", devWallet, {
    trader: devWallet.address, market: "ETH/USDT", side: "buy", orderType: "limit",
    quantity: "1500000", price: "2000000000", nonce: "1", expiry: "1700000000" }],
  ["order-sell-market-max", 31337, "Order", devWallet, {
    trader: devWallet.address, market: "ETH/USDT", side: "sell", orderType: "market",
    quantity: MAX63, price: "1", nonce: MAX64, expiry: MAX64 }],
  ["order-unicode-market", 1, "Order", user1, {
    trader: user1.address, market: "ÉTH/USDT💱", side: "buy", orderType: "limit",
    quantity: "1", price: MAX63, nonce: "0", expiry: "0" }],
  ["order-tutorial-sell", 8453, "Order", user2, {
    trader: user2.address, market: "ETH/USDT", side: "sell", orderType: "limit",
    quantity: "1000000", price: "200000000", nonce: "42", expiry: "1893456000" }],
  ["order-empty-strings", 31337, "Order", devWallet, {
    trader: devWallet.address, market: "", side: "", orderType: "", quantity: "0", price: "0", nonce: "7", expiry: "8" }],
  ["cancel", 31337, "Cancel", devWallet, {
    trader: devWallet.address, orderId: keccak256(toUtf8Bytes("an order id")), nonce: "2", expiry: "1700000600" }],
  ["cancel-max", 1, "Cancel", user1, {
    trader: user1.address, orderId: "0x" + "ff".repeat(32), nonce: MAX64, expiry: MAX64 }],
  ["cancel-all-market", 31337, "CancelAll", devWallet, {
    trader: devWallet.address, market: "ETH/USDT", nonce: "5", expiry: "1700000900" }],
  ["cancel-all-every-market", 8453, "CancelAll", user2, {
    trader: user2.address, market: "", nonce: MAX64, expiry: MAX64 }],
  ["cancel-all-unicode", 1, "CancelAll", user1, {
    trader: user1.address, market: "ÉTH/USDT💱", nonce: "0", expiry: "0" }],
  ["order-fok", 31337, "Order", devWallet, {
    trader: devWallet.address, market: "ETH/USDT", side: "buy", orderType: "fok",
    quantity: "2000000", price: "2100000000", nonce: "11", expiry: "1700000000" }],
  ["order-post-only", 31337, "Order", user2, {
    trader: user2.address, market: "ETH/USDT", side: "sell", orderType: "post_only",
    quantity: "1000000", price: "2200000000", nonce: "12", expiry: "1700000000" }],
  ["withdraw", 31337, "Withdraw", devWallet, {
    trader: devWallet.address, token: "USDT", amount: "250500000", recipient: other, nonce: "3", expiry: "1700001200" }],
  ["withdraw-self-max", 8453, "Withdraw", user2, {
    trader: user2.address, token: "ETH", amount: MAX63, recipient: user2.address, nonce: "9", expiry: MAX64 }],
  ["lock", 31337, "Lock", null, {
    app: "orderbook", view: "0", index: "1", chainingHash: keccak256(toUtf8Bytes("h1")) }],
  ["lock-max", 1, "Lock", null, {
    app: "orderbook", view: MAX64, index: MAX64, chainingHash: "0x" + "00".repeat(32) }],
  ["finalize", 31337, "Finalize", null, {
    app: "orderbook", view: "3", index: "1024", chainingHash: keccak256(toUtf8Bytes("h1024")) }],
  ["balance", 31337, "Balance", null, {
    app: "orderbook", account: user1.address, token: "USDT", balance: "1000000000", index: "17" }],
  ["balance-unicode", 8453, "Balance", null, {
    app: "ordre-livre-é", account: other, token: "ΞTH", balance: MAX63, index: MAX64 }],
  ["withdrawal", 31337, "Withdrawal", null, {
    app: "orderbook", id: keccak256(toUtf8Bytes("withdrawal 1")), trader: devWallet.address, token: "USDT",
    amount: "250500000", recipient: other, index: "99" }],
];

const eipCases = [];
for (const [name, chainId, primaryType, wallet, message] of cases) {
  const domain = domainFor(chainId);
  const types = { [primaryType]: TYPES[primaryType] };
  const c = {
    name,
    primaryType,
    domain,
    types,
    message,
    domain_separator: TypedDataEncoder.hashDomain(domain),
    struct_hash: TypedDataEncoder.hashStruct(primaryType, types, message),
    digest: TypedDataEncoder.hash(domain, types, message),
  };
  if (TRADER_TYPES.has(primaryType)) {
    c.signature = await wallet.signTypedData(domain, types, message);
    c.address = wallet.address;
    check(verifyTypedData(domain, types, message, c.signature) === wallet.address, name + " verify");
    // The eth_signTypedData_v4 request a wallet is given, and ethers'
    // digest of that JSON after a round trip through text: the Go side's
    // OrderTypedData must produce the same request.
    const payload = JSON.parse(JSON.stringify(TypedDataEncoder.getPayload(domain, types, message)));
    const { EIP712Domain, ...payloadTypes } = payload.types;
    c.typed_data_v4 = payload;
    c.typed_data_v4_digest = TypedDataEncoder.hash(payload.domain, payloadTypes, payload.message);
    check(c.typed_data_v4_digest === c.digest, name + " payload digest");
  }
  eipCases.push(c);
}

write("eip712.json", {
  about: "EIP-712 vectors for seqbook's typed messages, computed by ethers. Regenerate: cd testdata/vectorgen && npm ci && node gen.mjs",
  generator: { ethers: ethersVersion, "@noble/curves": nobleVersion, package: pkg.name },
  type_strings: Object.fromEntries(Object.keys(TYPES).map((t) => [t, TypedDataEncoder.from({ [t]: TYPES[t] }).encodeType(t)])),
  keys: [
    { private_key: devWallet.privateKey, address: devWallet.address },
    { private_key: user1.privateKey, address: user1.address },
    { private_key: user2.privateKey, address: user2.address },
  ],
  cases: eipCases,
});

// ---------------------------------------------------------------- EIP-191 legacy
// Message texts are what the tutorial's Python clients build: f"Order
// {side} {quantity} {base} at {price} {quote}" over floats, so every number
// is in Python's float repr. They are written here literally (checked with
// CPython), with the base units the Go side formats them from.
const legacyCases = [
  ["seed-buy", user1, "buy", "1000000", "200000000", "ETH", "USDT", "Order buy 1.0 ETH at 200.0 USDT"],
  ["seed-sell", user2, "sell", "1000000", "200000000", "ETH", "USDT", "Order sell 1.0 ETH at 200.0 USDT"],
  ["docs-example", user1, "buy", "1500000", "2000000000", "ETH", "USDT", "Order buy 1.5 ETH at 2000.0 USDT"],
  ["small-exponent", user2, "sell", "10", "100", "ETH", "USDT", "Order sell 1e-05 ETH at 0.0001 USDT"],
  ["one-unit", devWallet, "buy", "1", "999999", "BTC", "USDC", "Order buy 1e-06 BTC at 0.999999 USDC"],
  ["mantissa-exponent", devWallet, "sell", "15", "1234567890123", "ETH", "USDT", "Order sell 1.5e-05 ETH at 1234567.890123 USDT"],
  ["max-amount", devWallet, "buy", MAX63, "4200000", "ETH", "USDT", "Order buy 9223372036854.775 ETH at 4.2 USDT"],
  ["unicode-tokens", user1, "buy", "500", "100000000000000", "ΞTH", "USDŦ", "Order buy 0.0005 ΞTH at 100000000.0 USDŦ"],
];
const legacy = [];
for (const [name, wallet, side, quantity, price, base, quote, message] of legacyCases) {
  const signature = await wallet.signMessage(message);
  check(verifyMessage(message, signature) === wallet.address, name + " verify");
  legacy.push({ name, side, quantity_units: quantity, price_units: price, base, quote, message,
    hash: hashMessage(message), signature, address: wallet.address, private_key: wallet.privateKey });
}
write("legacy.json", {
  about: "EIP-191 personal_sign vectors of the legacy order text, signed by ethers' Wallet.signMessage. Regenerate: cd testdata/vectorgen && npm ci && node gen.mjs",
  generator: { ethers: ethersVersion },
  cases: legacy,
});

// ---------------------------------------------------------------- BLS
// Ethereum/IETF BLS: public keys in G1 (48 bytes), signatures in G2 (96
// bytes) -- noble's "longSignatures" -- under the proof-of-possession
// ciphersuite. noble's default DST is the _NUL_ suite, so both DSTs are
// passed explicitly.
const bls = bls12_381.longSignatures;
const DST_SIG = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
const DST_POP = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
const r = bls12_381.fields.Fr.ORDER;
const skFromSeed = (seed) => {
  // sha256 mod r, never zero: a fixed, reproducible secret key.
  const n = BigInt(hex(sha256(seed))) % r;
  check(n !== 0n, "nonzero sk");
  return Buffer.from(n.toString(16).padStart(64, "0"), "hex");
};
const sigBytes = (p) => bls.Signature.toBytes(p);
const pkBytes = (p) => p.toBytes(true);

const digests = [
  "0x" + "00".repeat(32),
  "0x" + "ff".repeat(32),
  hex(sha256("seqbook bls vector")),
  eipCases.find((c) => c.name === "lock").digest,
  eipCases.find((c) => c.name === "balance").digest,
];
const blsKeys = [];
for (const seed of ["seqbook bls vector key 1", "seqbook bls vector key 2", "seqbook bls vector key 3"]) {
  const sk = skFromSeed(seed);
  const pk = bls.getPublicKey(sk);
  const pop = bls.sign(bls.hash(pkBytes(pk), DST_POP), sk);
  check(bls.verify(pop, bls.hash(pkBytes(pk), DST_POP), pk), "pop verify");
  const signatures = digests.map((d) => {
    const msg = Buffer.from(d.slice(2), "hex");
    const s = bls.sign(bls.hash(msg, DST_SIG), sk);
    check(bls.verify(s, bls.hash(msg, DST_SIG), pk), "sig verify");
    return { digest: d, signature: hex(sigBytes(s)) };
  });
  blsKeys.push({ seed, secret_key: hex(sk), public_key: hex(pkBytes(pk)), pop: hex(sigBytes(pop)), signatures });
}
const aggregates = digests.map((d, i) => {
  const msg = Buffer.from(d.slice(2), "hex");
  const agg = bls.aggregateSignatures(blsKeys.map((k) => Buffer.from(k.signatures[i].signature.slice(2), "hex")));
  const aggPk = bls.aggregatePublicKeys(blsKeys.map((k) => Buffer.from(k.public_key.slice(2), "hex")));
  check(bls.verify(agg, bls.hash(msg, DST_SIG), aggPk), "aggregate verify");
  return { digest: d, signers: [0, 1, 2], signature: hex(sigBytes(agg)), aggregate_public_key: hex(pkBytes(aggPk)) };
});
write("bls.json", {
  about: "BLS12-381 vectors (pubkeys G1, signatures G2, IETF POP ciphersuite) made by noble-curves. Regenerate: cd testdata/vectorgen && npm ci && node gen.mjs",
  generator: { "@noble/curves": nobleVersion },
  dst_signature: DST_SIG,
  dst_pop: DST_POP,
  keys: blsKeys,
  aggregates,
});
