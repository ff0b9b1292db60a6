// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// The two calls the bridge makes on a listed ERC-20 token.
interface IERC20Minimal {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function decimals() external view returns (uint8);
}

/// @title SeqbookBridge
/// @notice Holds ETH and listed ERC-20 tokens for a seqbook cluster.
/// Deposits lock funds and emit Deposit, which the relayer turns into a
/// deposit operation signed by the cluster's bridge key. Withdrawals pay
/// out only on a quorum withdrawal proof of the cluster's replicas: an
/// aggregate BLS signature (Ethereum/IETF scheme, DST
/// BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_) over the EIP-712 digest of
/// Withdrawal(string app,bytes32 id,address trader,string token,
/// uint256 amount,address recipient,uint64 index), checked here with the
/// EIP-2537 precompiles. Each withdrawal id pays once.
/// @dev The replica set and threshold are fixed at deployment: a change of
/// replica keys means a new bridge (docs/bridge.md).
contract SeqbookBridge {
    /// A withdrawal as recorded by the replicas; amount in the orderbook's
    /// base units (6 decimals).
    struct Withdrawal {
        bytes32 id;
        address trader;
        string token;
        uint256 amount;
        address recipient;
        uint64 index;
    }

    struct Token {
        address addr; // address(0) is ETH
        uint8 decimals;
        bool listed;
    }

    /// Funds locked for `account` on the orderbook; `amount` is in the
    /// orderbook's base units (6 decimals), exactly what is to be credited;
    /// `token` is address(0) for ETH. depositId counts from 1.
    event Deposit(address indexed account, address indexed token, uint256 amount, uint256 indexed depositId);
    /// A withdrawal paid out; amount in the token's own units.
    event Withdrawn(bytes32 indexed id, address indexed recipient, address token, uint256 amount);

    // EIP-2537 precompiles (Prague) and the two older ones used here.
    address constant SHA256 = address(0x02);
    address constant MODEXP = address(0x05);
    address constant G1ADD = address(0x0b);
    address constant G1MSM = address(0x0c);
    address constant G2ADD = address(0x0d);
    address constant PAIRING = address(0x0f);
    address constant MAP_FP2_TO_G2 = address(0x11);

    /// The orderbook's amounts have 6 decimals and are at most 2^63-1.
    uint8 constant BASE_DECIMALS = 6;
    uint256 constant UNITS_MAX = 2 ** 63 - 1;
    /// A token with more decimals could overflow the conversion.
    uint8 constant TOKEN_DECIMALS_MAX = 36;

    bytes constant DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    bytes32 constant DOMAIN_TYPEHASH = keccak256("EIP712Domain(string name,string version,uint256 chainId)");
    bytes32 constant WITHDRAWAL_TYPEHASH =
        keccak256("Withdrawal(string app,bytes32 id,address trader,string token,uint256 amount,address recipient,uint64 index)");

    // The BLS12-381 base field modulus p, 48 bytes, as a high 16 and a low 32.
    bytes16 constant P_HI = 0x1a0111ea397fe69a4b1ba7b6434bacd7;
    bytes32 constant P_LO = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;

    // -g1, the negated G1 generator, in the EIP-2537 encoding (x, p - y),
    // each coordinate 16 zero bytes and 48 bytes.
    bytes32 constant NEG_G1_X_HI = 0x0000000000000000000000000000000017f1d3a73197d7942695638c4fa9ac0f;
    bytes32 constant NEG_G1_X_LO = 0xc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb;
    bytes32 constant NEG_G1_Y_HI = 0x00000000000000000000000000000000114d1d6855d545a8aa7d76c8cf2e21f2;
    bytes32 constant NEG_G1_Y_LO = 0x67816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca;

    /// The EIP-712 domain separator of {name:"seqbook",version:"1",chainId}.
    bytes32 public immutable domainSeparator;
    /// keccak256 of the cluster's app name.
    bytes32 public immutable appHash;
    /// The cluster's chain id (part of every signed digest).
    uint256 public immutable clusterChainId;
    /// How many replicas must sign a withdrawal.
    uint256 public immutable threshold;
    /// How many replicas the cluster has; bit i of a signer bitmap is
    /// replica i in cluster-file order.
    uint256 public immutable replicaCount;
    /// The cluster's app name.
    string public app;

    // Replica i's public key, uncompressed EIP-2537 G1 encoding, in
    // keyWords[4i .. 4i+3].
    bytes32[] private keyWords;
    mapping(bytes32 => Token) private tokens; // by keccak256(symbol)
    mapping(address => string) private symbols; // listed token → symbol

    /// Withdrawal ids already paid.
    mapping(bytes32 => bool) public paid;
    /// Deposits made so far; the last deposit's id.
    uint256 public depositCount;

    /// @param app_ the cluster's app ("orderbook")
    /// @param chainId_ the cluster's chain id (EIP-712 domain)
    /// @param threshold_ signers needed, more than half of the replicas
    /// @param replicaKeys each replica's public key, 128 bytes uncompressed
    ///        (EIP-2537), in cluster-file order
    /// @param tokenSymbols the orderbook's token symbols listed here
    /// @param tokenAddrs their ERC-20 contracts, address(0) for ETH
    constructor(
        string memory app_,
        uint256 chainId_,
        uint256 threshold_,
        bytes[] memory replicaKeys,
        string[] memory tokenSymbols,
        address[] memory tokenAddrs
    ) {
        uint256 n = replicaKeys.length;
        require(n > 0 && n <= 256, "replica count must be 1 to 256");
        require(threshold_ * 2 > n && threshold_ <= n, "threshold must be more than half of the replicas");
        require(tokenSymbols.length == tokenAddrs.length, "token symbols and addresses differ in number");
        app = app_;
        appHash = keccak256(bytes(app_));
        clusterChainId = chainId_;
        threshold = threshold_;
        replicaCount = n;
        domainSeparator = keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("seqbook"), keccak256("1"), chainId_));
        for (uint256 i = 0; i < n; i++) {
            bytes memory k = replicaKeys[i];
            require(k.length == 128, "replica key must be 128 bytes (uncompressed G1)");
            // G1MSM by 1 checks the point is on the curve and in the
            // subgroup; the point at infinity (all zeros) is refused.
            (bool ok, bytes memory same) = G1MSM.staticcall(abi.encodePacked(k, uint256(1)));
            require(ok && keccak256(same) == keccak256(k) && keccak256(k) != keccak256(new bytes(128)),
                "replica key is not a G1 point of the subgroup");
            bytes32 w0; bytes32 w1; bytes32 w2; bytes32 w3;
            assembly {
                w0 := mload(add(k, 32))
                w1 := mload(add(k, 64))
                w2 := mload(add(k, 96))
                w3 := mload(add(k, 128))
            }
            keyWords.push(w0);
            keyWords.push(w1);
            keyWords.push(w2);
            keyWords.push(w3);
        }
        for (uint256 i = 0; i < tokenSymbols.length; i++) {
            bytes32 h = keccak256(bytes(tokenSymbols[i]));
            require(bytes(tokenSymbols[i]).length > 0, "empty token symbol");
            require(!tokens[h].listed, "token symbol listed twice");
            require(bytes(symbols[tokenAddrs[i]]).length == 0, "token address listed twice");
            uint8 d = 18;
            if (tokenAddrs[i] != address(0)) {
                d = IERC20Minimal(tokenAddrs[i]).decimals();
            }
            require(d <= TOKEN_DECIMALS_MAX, "token has too many decimals");
            tokens[h] = Token(tokenAddrs[i], d, true);
            symbols[tokenAddrs[i]] = tokenSymbols[i];
        }
    }

    // ---- Deposits ----

    /// Locks msg.value ETH for `account` on the orderbook.
    function deposit(address account) external payable {
        _deposit(account, address(0), msg.value);
    }

    /// Locks `amount` of a listed ERC-20 token (in the token's units) for
    /// `account`; the bridge must be approved for it.
    function depositToken(address token, address account, uint256 amount) external {
        require(token != address(0), "use deposit for ETH");
        _deposit(account, token, amount);
        require(IERC20Minimal(token).transferFrom(msg.sender, address(this), amount), "token transferFrom failed");
    }

    function _deposit(address account, address token, uint256 amount) private {
        require(account != address(0), "account is the zero address");
        string memory sym = symbols[token];
        require(bytes(sym).length > 0, "token is not listed");
        uint256 units = toUnits(amount, tokens[keccak256(bytes(sym))].decimals);
        require(units > 0, "amount is zero");
        uint256 id = ++depositCount;
        emit Deposit(account, token, units, id);
    }

    // ---- Withdrawals ----

    /// Pays out a withdrawal on a quorum proof. `signers` is a bitmap of
    /// replicas (bit i = replica i in cluster order); `signature` is their
    /// aggregate BLS signature, uncompressed (256 bytes, EIP-2537 G2).
    function withdraw(Withdrawal calldata w, uint256 signers, bytes calldata signature) external {
        require(!paid[w.id], "withdrawal already paid");
        Token memory t = tokens[keccak256(bytes(w.token))];
        require(t.listed, "token is not listed");
        uint256 amount = toTokenAmount(w.amount, t.decimals);
        verifyQuorum(withdrawalDigest(w), signers, signature);

        paid[w.id] = true;
        emit Withdrawn(w.id, w.recipient, t.addr, amount);
        if (t.addr == address(0)) {
            (bool ok,) = w.recipient.call{value: amount}("");
            require(ok, "ETH transfer failed");
        } else {
            require(IERC20Minimal(t.addr).transfer(w.recipient, amount), "token transfer failed");
        }
    }

    /// The EIP-712 digest the replicas sign for a withdrawal.
    function withdrawalDigest(Withdrawal calldata w) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(WITHDRAWAL_TYPEHASH, appHash, w.id, w.trader, keccak256(bytes(w.token)), w.amount, w.recipient, w.index)
        );
        return keccak256(abi.encodePacked(hex"1901", domainSeparator, structHash));
    }

    /// Reverts unless `signature` is a valid aggregate of at least
    /// `threshold` replicas (the `signers` bitmap) over `digest`.
    function verifyQuorum(bytes32 digest, uint256 signers, bytes calldata signature) public view {
        require(signers >> replicaCount == 0, "signer is not a replica");
        uint256 count = 0;
        for (uint256 s = signers; s != 0; s &= s - 1) {
            count++;
        }
        require(count >= threshold, "fewer signers than the threshold");
        require(signature.length == 256, "signature must be 256 bytes (uncompressed G2)");
        bytes memory input = abi.encodePacked(
            NEG_G1_X_HI, NEG_G1_X_LO, NEG_G1_Y_HI, NEG_G1_Y_LO, signature, aggregateKey(signers), hashToG2(digest)
        );
        // e(-g1, sig) · e(pk, H(m)) == 1. The precompile checks that every
        // point is on its curve and in its subgroup and fails otherwise.
        (bool ok, bytes memory out) = PAIRING.staticcall(input);
        require(ok && out.length == 32, "signature is not a G2 point of the subgroup");
        require(uint256(bytes32(out)) == 1, "BLS signature does not verify");
    }

    /// The sum of the public keys of the replicas in `signers` (non-empty).
    function aggregateKey(uint256 signers) public view returns (bytes memory sum) {
        for (uint256 i = 0; signers != 0; i++) {
            if (signers & 1 == 1) {
                bytes memory k = abi.encodePacked(keyWords[4 * i], keyWords[4 * i + 1], keyWords[4 * i + 2], keyWords[4 * i + 3]);
                if (sum.length == 0) {
                    sum = k;
                } else {
                    bool ok;
                    (ok, sum) = G1ADD.staticcall(abi.encodePacked(sum, k));
                    require(ok, "G1ADD failed");
                }
            }
            signers >>= 1;
        }
    }

    /// The public key of replica i, uncompressed (128 bytes).
    function replicaKey(uint256 i) external view returns (bytes memory) {
        require(i < replicaCount, "no such replica");
        return abi.encodePacked(keyWords[4 * i], keyWords[4 * i + 1], keyWords[4 * i + 2], keyWords[4 * i + 3]);
    }

    /// A listed token by symbol: its address (address(0) for ETH) and
    /// decimals; reverts if not listed.
    function listedToken(string calldata symbol) external view returns (address addr, uint8 decimals) {
        Token memory t = tokens[keccak256(bytes(symbol))];
        require(t.listed, "token is not listed");
        return (t.addr, t.decimals);
    }

    /// The symbol of a listed token address ("" if not listed).
    function symbolOf(address tokenAddr) external view returns (string memory) {
        return symbols[tokenAddr];
    }

    // ---- Hash to G2 (RFC 9380, BLS12381G2_XMD:SHA-256_SSWU_RO_) ----

    /// hash_to_curve of a 32-byte message under the signature DST, in the
    /// EIP-2537 G2 encoding (256 bytes). MAP_FP2_TO_G2 clears the cofactor
    /// of each point, and clearing is linear, so the sum is the result.
    function hashToG2(bytes32 message) public view returns (bytes memory) {
        bytes32[8] memory u = expandMessageXmd(message);
        bytes memory q0 = mapToG2(u[0], u[1], u[2], u[3]);
        bytes memory q1 = mapToG2(u[4], u[5], u[6], u[7]);
        (bool ok, bytes memory sum) = G2ADD.staticcall(abi.encodePacked(q0, q1));
        require(ok && sum.length == 256, "G2ADD failed");
        return sum;
    }

    /// expand_message_xmd(message, DST, 256) with SHA-256: eight 32-byte
    /// blocks b_1..b_8.
    function expandMessageXmd(bytes32 message) internal pure returns (bytes32[8] memory b) {
        // msg' = Z_pad(64) ‖ msg ‖ I2OSP(256, 2) ‖ I2OSP(0, 1) ‖ DST ‖ I2OSP(len(DST), 1)
        bytes32 b0 = sha256(abi.encodePacked(bytes32(0), bytes32(0), message, uint16(256), uint8(0), DST, uint8(DST.length)));
        b[0] = sha256(abi.encodePacked(b0, uint8(1), DST, uint8(DST.length)));
        for (uint8 i = 1; i < 8; i++) {
            b[i] = sha256(abi.encodePacked(b0 ^ b[i - 1], i + 1, DST, uint8(DST.length)));
        }
    }

    /// Maps the Fp2 element (hi0‖lo0 mod p) + (hi1‖lo1 mod p)·u to G2.
    function mapToG2(bytes32 hi0, bytes32 lo0, bytes32 hi1, bytes32 lo1) internal view returns (bytes memory) {
        (bool ok, bytes memory q) = MAP_FP2_TO_G2.staticcall(abi.encodePacked(modP(hi0, lo0), modP(hi1, lo1)));
        require(ok && q.length == 256, "MAP_FP2_TO_G2 failed");
        return q;
    }

    /// A 64-byte big-endian integer reduced mod p, as a 64-byte EIP-2537
    /// field element (16 zero bytes, 48 bytes), with MODEXP (x^1 mod p).
    function modP(bytes32 hi, bytes32 lo) internal view returns (bytes memory) {
        (bool ok, bytes memory r) =
            MODEXP.staticcall(abi.encodePacked(uint256(64), uint256(1), uint256(48), hi, lo, uint8(1), P_HI, P_LO));
        require(ok && r.length == 48, "MODEXP failed");
        return abi.encodePacked(bytes16(0), r);
    }

    // ---- Amounts ----

    /// Base units (6 decimals) to token units; refuses what does not
    /// convert exactly (a token with fewer than 6 decimals).
    function toTokenAmount(uint256 units, uint8 decimals) internal pure returns (uint256) {
        require(units > 0 && units <= UNITS_MAX, "amount out of range");
        if (decimals >= BASE_DECIMALS) {
            return units * 10 ** (decimals - BASE_DECIMALS);
        }
        uint256 f = 10 ** (BASE_DECIMALS - decimals);
        require(units % f == 0, "amount does not convert to the token's decimals");
        return units / f;
    }

    /// Token units to base units; refuses what does not convert exactly
    /// (dust below the orderbook's 6 decimals) or exceeds 2^63-1.
    function toUnits(uint256 amount, uint8 decimals) internal pure returns (uint256 units) {
        if (decimals >= BASE_DECIMALS) {
            uint256 f = 10 ** (decimals - BASE_DECIMALS);
            require(amount % f == 0, "amount does not convert to the orderbook's 6 decimals");
            units = amount / f;
        } else {
            require(amount <= UNITS_MAX, "amount above the orderbook's maximum");
            units = amount * 10 ** (BASE_DECIMALS - decimals);
        }
        require(units <= UNITS_MAX, "amount above the orderbook's maximum");
    }
}
