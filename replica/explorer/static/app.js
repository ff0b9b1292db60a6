// The explorer page: markets, the live book and trades, finalized batches
// and a trader's orders from GET /ws; balances from GET /balance; proofs
// from the aggregator, verified by verify.js.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const BATCHES_SHOWN = 20, TRADES_SHOWN = 30, LEVELS_SHOWN = 15;
  let cfg = null, ws = null, market = "", trader = "";
  const book = { bids: new Map(), asks: new Map() };
  let trades = [], batches = [];
  const orders = new Map();

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function fill(tbody, rows, cols) {
    tbody.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      cols(r).forEach((c) => cell(tr, c[0], c[1]));
      if (r.fresh) { tr.className = "new"; r.fresh = false; }
      return tr;
    }));
  }
  const short = (h) => h ? h.slice(0, 10) + "…" + h.slice(-6) : "";
  const num = (s) => Number(s);

  function renderBook() {
    const side = (m, desc) => [...m.values()].sort((a, b) => desc ? num(b.price) - num(a.price) : num(a.price) - num(b.price)).slice(0, LEVELS_SHOWN);
    fill($("asks"), side(book.asks, false).reverse(), (l) => [[l.price], [l.quantity], [String(l.orders)]]);
    fill($("bids"), side(book.bids, true), (l) => [[l.price], [l.quantity], [String(l.orders)]]);
  }
  function renderTrades() {
    fill($("trades"), trades.slice().reverse(), (t) => [["#" + t.seq], [t.taker_side], [t.price, "price"], [t.quantity], [String(t.index)]]);
  }
  function renderBatches() {
    fill($("batches"), batches, (b) => [[String(b.index)], [short(b.chaining_hash), "hash"], [String(b.operations ?? "")],
      [b.signers && b.signers.length ? String(b.view || 0) : ""], [(b.signers || []).join(" ")]]);
  }
  function renderOrders() {
    const list = [...orders.values()].sort((a, b) => b.index - a.index);
    fill($("orders"), list, (o) => [[short(o.order_id), "hash"], [o.side], [o.order_type], [o.price], [o.quantity], [o.filled], [o.status, "status"], [String(o.index)]]);
  }
  function setLevels(m, levels) {
    for (const l of levels) {
      if (num(l.quantity) === 0) m.delete(l.price); else m.set(l.price, l);
    }
  }

  function onMessage(msg) {
    if (msg.error) { console.warn("feed refused:", msg.error); return; }
    $("applied").textContent = String(msg.index);
    const d = msg.data;
    switch (msg.channel) {
      case "book":
        if (d.market !== market) return;
        if (d.snapshot) { book.bids.clear(); book.asks.clear(); }
        setLevels(book.bids, d.bids); setLevels(book.asks, d.asks);
        renderBook();
        break;
      case "trades":
        if (d.market !== market) return;
        if (d.snapshot) trades = [];
        for (const t of d.trades) { t.fresh = !d.snapshot; trades.push(t); }
        trades = trades.slice(-TRADES_SHOWN);
        renderTrades();
        break;
      case "orders":
        if (d.trader.toLowerCase() !== trader.toLowerCase()) return;
        if (d.snapshot) orders.clear();
        for (const o of d.orders) { o.fresh = true; orders.set(o.order_id, o); }
        renderOrders();
        if (!d.snapshot) loadBalances();
        break;
      case "finality":
        if (d.index === 0 || (batches.length && d.index <= batches[0].index)) return;
        d.fresh = true;
        batches.unshift(d);
        batches = batches.slice(0, BATCHES_SHOWN);
        renderBatches();
        break;
    }
  }

  function send(o) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(o)); }
  function subscribeAll() {
    send({ op: "subscribe", channel: "finality" });
    if (market) {
      send({ op: "subscribe", channel: "book", market });
      send({ op: "subscribe", channel: "trades", market });
    }
    if (trader) send({ op: "subscribe", channel: "orders", trader });
  }
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    ws = new WebSocket(url);
    $("feed-state").textContent = "connecting";
    ws.onopen = () => { $("feed-state").textContent = "live"; subscribeAll(); };
    ws.onmessage = (e) => onMessage(JSON.parse(e.data));
    ws.onclose = (e) => {
      $("feed-state").textContent = "reconnecting" + (e.reason ? " (" + e.reason + ")" : "");
      setTimeout(connect, 1000); // a new snapshot replaces what the page shows
    };
  }

  function setMarket(m) {
    if (market) {
      send({ op: "unsubscribe", channel: "book", market });
      send({ op: "unsubscribe", channel: "trades", market });
    }
    market = m;
    book.bids.clear(); book.asks.clear(); trades = [];
    renderBook(); renderTrades();
    send({ op: "subscribe", channel: "book", market });
    send({ op: "subscribe", channel: "trades", market });
  }

  async function loadBalances() {
    if (!trader) return;
    const rows = [];
    for (const token of cfg.tokens) {
      const r = await fetch(`/balance?address=${encodeURIComponent(trader)}&token=${encodeURIComponent(token)}`);
      const b = await r.json();
      if (!r.ok) { $("trader-error").textContent = b.error; return; }
      rows.push({ token, balance: b.balance, index: b.index });
    }
    fill($("balances"), rows, (b) => [[b.token], [b.balance, "balance"], [String(b.index)], ["signed by " + cfg.replica]]);
  }

  function setTrader(t) {
    $("trader-error").textContent = "";
    if (!/^0x[0-9a-fA-F]{40}$/.test(t)) { $("trader-error").textContent = "not a 0x-prefixed 20-byte address"; return; }
    if (trader && trader !== t) send({ op: "unsubscribe", channel: "orders", trader });
    if (trader !== t) { trader = t; orders.clear(); renderOrders(); send({ op: "subscribe", channel: "orders", trader }); }
    loadBalances();
  }

  async function verify() {
    const out = $("verify-result"), steps = $("verify-steps");
    steps.replaceChildren();
    if (!trader) { out.className = "failed"; out.textContent = "enter a trader address first"; return; }
    out.className = "pending"; out.textContent = "fetching the proof from the aggregator…";
    const token = $("verify-token").value;
    let proof;
    try {
      const r = await fetch(`${cfg.aggregator}/aggregate_balance?address=${encodeURIComponent(trader)}&token=${encodeURIComponent(token)}`);
      proof = await r.json();
      if (!r.ok) throw new Error(proof.error || ("HTTP " + r.status));
    } catch (e) {
      out.className = "failed"; out.textContent = "no proof: " + e.message; return;
    }
    if ($("tamper").checked) proof.balance_units = String(BigInt(proof.balance_units) + 1000000n), proof.balance = SeqbookVerify.formatAmount(BigInt(proof.balance_units));
    const res = SeqbookVerify.verifyBalanceProof(proof, cfg);
    for (const s of res.steps) { const li = document.createElement("li"); li.textContent = s; steps.appendChild(li); }
    if (res.ok) {
      out.className = "verified";
      out.textContent = `verified: ${proof.address} holds ${proof.balance} ${proof.token} at index ${proof.index}`;
    } else {
      out.className = "failed";
      out.textContent = "not verified: " + res.reason;
    }
  }

  async function start() {
    const r = await fetch("/explorer/config");
    cfg = await r.json();
    $("app").textContent = cfg.app + " (chain " + cfg.chain_id + ")";
    $("replica").textContent = cfg.replica;
    const sel = $("market");
    sel.replaceChildren(...cfg.markets.map((m) => new Option(m, m)));
    sel.onchange = () => setMarket(sel.value);
    $("verify-token").replaceChildren(...cfg.tokens.map((t) => new Option(t, t)));
    market = cfg.markets[0] || "";
    $("trader-form").onsubmit = (e) => { e.preventDefault(); setTrader($("trader").value.trim()); };
    $("verify").onclick = verify;
    const q = new URLSearchParams(location.search);
    if (q.get("trader")) { $("trader").value = q.get("trader"); trader = q.get("trader"); loadBalances(); }
    connect();
  }
  start().catch((e) => { $("feed-state").textContent = "failed: " + e.message; });
})();
