// Balance quorum proof verification in the browser (docs/verification.md
// gives the same steps for other languages). Pure functions over the
// `Noble` bundle: no DOM, no network.
"use strict";
const SeqbookVerify = (() => {
  const DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
  const TYPE_DOMAIN = "EIP712Domain(string name,string version,uint256 chainId)";
  const TYPE_BALANCE = "Balance(string app,address account,string token,uint256 balance,uint64 index)";
  const SCALE = 1000000n;

  const utf8 = (s) => new TextEncoder().encode(s);
  const keccak = (b) => Noble.keccak256(b);
  function hexToBytes(h, len, what) {
    if (typeof h !== "string" || !/^0x[0-9a-fA-F]*$/.test(h) || h.length % 2 !== 0) throw new Error(what + " is not 0x-prefixed hex");
    const b = new Uint8Array((h.length - 2) / 2);
    for (let i = 0; i < b.length; i++) b[i] = parseInt(h.substr(2 + 2 * i, 2), 16);
    if (len !== undefined && b.length !== len) throw new Error(what + " is " + b.length + " bytes, want " + len);
    return b;
  }
  const bytesToHex = (b) => "0x" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  function word(v) { // a uint256 (BigInt) as 32 big-endian bytes
    const w = new Uint8Array(32);
    for (let i = 31; i >= 0 && v > 0n; i--) { w[i] = Number(v & 0xffn); v >>= 8n; }
    return w;
  }
  function formatAmount(units) { // client/amount.Format
    const whole = units / SCALE, frac = units % SCALE;
    if (frac === 0n) return whole.toString();
    return whole.toString() + "." + frac.toString().padStart(6, "0").replace(/0+$/, "");
  }

  // eip712Digest recomputes what the replicas signed for a balance.
  function balanceDigest(chainId, app, account, token, balanceUnits, index) {
    const domainSep = keccak(concat(keccak(utf8(TYPE_DOMAIN)), keccak(utf8("seqbook")), keccak(utf8("1")), word(BigInt(chainId))));
    const acct = new Uint8Array(32);
    acct.set(hexToBytes(account, 20, "address"), 12);
    const structHash = keccak(concat(keccak(utf8(TYPE_BALANCE)), keccak(utf8(app)), acct, keccak(utf8(token)),
      word(balanceUnits), word(BigInt(index))));
    return keccak(concat(new Uint8Array([0x19, 0x01]), domainSep, structHash));
  }

  // verifyBalanceProof checks a GET /aggregate_balance answer against the
  // cluster (config: chain_id, app, replicas [{id, bls_pubkey}],
  // threshold). It returns {ok, reason, steps}: reason names the first
  // check that failed.
  function verifyBalanceProof(p, cfg) {
    const steps = [];
    const fail = (reason) => ({ ok: false, reason, steps });
    try {
      if (p.app !== cfg.app) return fail(`proof is for app "${p.app}", the cluster's is "${cfg.app}"`);
      steps.push(`app "${p.app}" is the cluster's`);
      if (!/^[0-9]+$/.test(String(p.balance_units))) return fail("balance_units is not a decimal integer");
      const units = BigInt(p.balance_units);
      if (formatAmount(units) !== p.balance) return fail(`balance "${p.balance}" does not match balance_units ${p.balance_units}`);
      const digest = balanceDigest(cfg.chain_id, p.app, p.address, p.token, units, p.index);
      if (bytesToHex(digest) !== String(p.digest).toLowerCase())
        return fail(`EIP-712 digest does not match the proof's fields: recomputed ${bytesToHex(digest)}, proof says ${p.digest}`);
      steps.push(`EIP-712 digest recomputed here: ${bytesToHex(digest)}`);
      const keys = new Map(cfg.replicas.map((r) => [r.id, r.bls_pubkey]));
      const seen = new Set();
      for (const s of p.signers || []) {
        if (!keys.has(s)) return fail(`signer ${s} is not a replica of the cluster`);
        if (seen.has(s)) return fail(`signer ${s} is named twice`);
        seen.add(s);
      }
      const others = cfg.replicas.map((r) => r.id).filter((id) => !seen.has(id));
      if (JSON.stringify(others) !== JSON.stringify(p.non_signers || [])) return fail("non_signers are not exactly the other replicas");
      if (p.threshold < cfg.threshold) return fail(`threshold ${p.threshold} is below the cluster's ${cfg.threshold}`);
      if (seen.size < p.threshold) return fail(`${seen.size} signers, fewer than the threshold ${p.threshold}`);
      steps.push(`${seen.size} of ${cfg.replicas.length} replicas signed (${[...seen].join(", ")}), threshold ${cfg.threshold}`);
      const pubs = [...seen].map((s) => hexToBytes(keys.get(s), 48, "public key of " + s));
      const aggPub = Noble.bls.aggregatePublicKeys(pubs);
      const sig = hexToBytes(p.signature, 96, "signature");
      if (!Noble.bls.verify(sig, digest, aggPub, { DST })) return fail("the aggregate BLS signature does not verify over the digest with the signers' keys");
      steps.push("aggregate BLS12-381 signature verified against the signers' aggregated public keys");
      return { ok: true, reason: "", steps };
    } catch (e) {
      return fail("malformed proof: " + e.message);
    }
  }

  return { verifyBalanceProof, balanceDigest, formatAmount, bytesToHex };
})();
