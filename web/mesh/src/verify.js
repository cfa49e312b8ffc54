// Verification of Hyperspace records in the browser, byte for byte as the
// Go nodes do it (internal/receipt, internal/jcs, internal/admission's Cert,
// p2p/envelope.go's message ids, internal/pow's static puzzle). Pure
// functions: no libp2p here, so node --test can check them against vectors
// written by Go (web/mesh/test/vectors.json).
import { sha256, sha512 } from '@noble/hashes/sha2'
import * as ed from '@noble/ed25519'
import { base58btc } from 'multiformats/bases/base58'

const enc = new TextEncoder()
const dec = new TextDecoder()

// SHA-512 for Ed25519 from @noble/hashes rather than WebCrypto, which pages
// outside a secure context (plain http from another host) do not have.
ed.etc.sha512Async = async (...m) => sha512(ed.etc.concatBytes(...m))
ed.etc.sha512Sync = (...m) => sha512(ed.etc.concatBytes(...m))

export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
export const b64 = (b) => btoa(String.fromCharCode(...b))
export const unb64 = (s) => {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new Error('not base64')
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0))
}

// canonicalize is RFC 8785 (JCS), as internal/jcs: members sorted by UTF-16
// code units (the default sort of JS strings), strings and numbers as
// ECMAScript's JSON.stringify writes them (which is what JCS specifies).
export function canonicalize (v) {
  if (v === null || typeof v === 'boolean') return JSON.stringify(v)
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error('jcs: non-finite number')
    return JSON.stringify(v)
  }
  if (typeof v === 'string') return JSON.stringify(v)
  if (Array.isArray(v)) return '[' + v.map(canonicalize).join(',') + ']'
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort()
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalize(v[k])).join(',') + '}'
  }
  throw new Error('jcs: unsupported value ' + typeof v)
}

// agentId is identity.IDFromPublic: "hs1" + lowercase unpadded base32 (RFC
// 4648 alphabet) of the first 20 bytes of sha256(pub).
export function agentId (pub) {
  const b = sha256(pub).slice(0, 20)
  const alpha = 'abcdefghijklmnopqrstuvwxyz234567'
  let out = ''
  let bits = 0
  let acc = 0
  for (const x of b) {
    acc = (acc << 8) | x
    bits += 8
    while (bits >= 5) {
      out += alpha[(acc >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += alpha[(acc << (5 - bits)) & 31]
  return 'hs1' + out
}

// verifyEd25519 checks an Ed25519 signature with WebCrypto (native code:
// BoringSSL's ref10-derived verifier in Chromium, like Go's crypto/ed25519
// cofactorless and strict about S), falling back to @noble/ed25519 (RFC 8032
// strict mode) where WebCrypto has no Ed25519 or the page is not a secure
// context. Imported keys are cached: a tab sees the same agents and nodes
// again and again.
const webKeys = new Map()
let webCrypto = globalThis.crypto?.subtle != null
export async function verifyEd25519 (sig, msg, pub) {
  if (sig.length !== 64 || pub.length !== 32) return false
  if (webCrypto) {
    try {
      const k = hex(pub)
      let key = webKeys.get(k)
      if (key == null) {
        key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify'])
        if (webKeys.size > 4096) webKeys.clear()
        webKeys.set(k, key)
      }
      return await crypto.subtle.verify({ name: 'Ed25519' }, key, sig, msg)
    } catch (e) {
      if (e?.name !== 'NotSupportedError') return false // e.g. a key that is not a curve point
      webCrypto = false
    }
  }
  try { return await ed.verifyAsync(sig, msg, pub, { zip215: false }) } catch { return false }
}

const isReceiptId = (id) => typeof id === 'string' && /^[0-9a-fA-F]{64}$/.test(id)

export const RESEARCH_PREFIX = 'hyperspace/research/'
const ID_PREFIX = '{"receipt":{"id":"'

// hashMsgId is p2p.hashMsgID: "x" + hex(sha256(data)).
export const hashMsgId = (data) => 'x' + hex(sha256(data))

// receiptMsgId is p2p.receiptMsgID, the message id of research topics.
export function receiptMsgId (data) {
  const p = ID_PREFIX.length
  if (data.length > p + 65 && dec.decode(data.subarray(0, p)) === ID_PREFIX && data[p + 64] === 0x22) {
    const id = dec.decode(data.subarray(p, p + 64))
    if (isReceiptId(id)) return id
  }
  try {
    const probe = JSON.parse(dec.decode(data))
    const id = probe?.receipt?.id
    if (probe !== null && typeof probe === 'object' && !Array.isArray(probe) && isReceiptId(id)) return id
  } catch {}
  return hashMsgId(data)
}

// msgId is the id the Go nodes give a message of topic (their
// WithMessageIdFn and WithTopicMessageIdFn), as gossipsub's bytes.
export function msgId (topic, data) {
  const s = topic.startsWith(RESEARCH_PREFIX) ? receiptMsgId(data) : hashMsgId(data)
  return enc.encode(s)
}

// leadingZeros counts leading zero bits (pow.LeadingZeros).
export function leadingZeros (b) {
  let n = 0
  for (const c of b) {
    if (c !== 0) return n + Math.clz32(c) - 24
    n += 8
  }
  return n
}

// staticBits is pow.StaticBits of protobuf public key bytes:
// SHA-256(SHA-256(p)).
export const staticBits = (p) => leadingZeros(sha256(sha256(p)))

const CERT_DOMAIN = 'hyperspace-agent-cert/v1\n'
export const certBytes = (agentPub, node) => enc.encode(CERT_DOMAIN + agentPub + '\n' + node)

// ed25519PublicKeyOfPeer returns the 32-byte key inlined in a peer id
// string (base58btc identity multihash of the protobuf key 08 01 12 20 ||
// key), or throws.
export function ed25519PublicKeyOfPeer (peer) {
  if (typeof peer !== 'string') throw new Error('peer id is not a string')
  const mh = base58btc.baseDecode(peer)
  // identity multihash (0x00), length 36, protobuf {Type: Ed25519, Data: 32 bytes}
  if (mh.length !== 38 || mh[0] !== 0x00 || mh[1] !== 36 || mh[2] !== 0x08 || mh[3] !== 0x01 || mh[4] !== 0x12 || mh[5] !== 0x20) {
    throw new Error('peer id does not inline an Ed25519 key')
  }
  return mh.slice(6)
}

// verifyEnvelope checks a research message as the Go validator's record
// checks do (receipt.Signed.Verify, admission's vouched + Cert.Verify):
// the id is sha256 of the canonical receipt, the signature verifies under
// the embedded key, peerId derives from it, and the cert binds that key to
// publisher (the message's authenticated source; omitted: the cert's node)
// with a signature by the node's key. It returns the envelope or throws an
// Error whose .reason is the Go reason name.
export async function verifyEnvelope (data, publisher, domain) {
  const fail = (reason, msg) => { const e = new Error(reason + ': ' + msg); e.reason = reason; throw e }
  let env
  try { env = JSON.parse(typeof data === 'string' ? data : dec.decode(data)) } catch (e) { fail('malformed', String(e)) }
  const s = env?.receipt
  const r = s?.receipt
  if (r === null || typeof r !== 'object' || !isReceiptId(s.id)) fail('malformed', 'no receipt')
  if (domain != null && r.domain !== domain) fail('unknown_domain', `receipt domain ${r.domain}`)
  let canon
  try { canon = enc.encode(canonicalize(r)) } catch (e) { fail('bad_id', String(e)) }
  const id = hex(sha256(canon))
  if (id !== s.id) fail('bad_id', `envelope says ${s.id}, content hashes to ${id}`)
  let pub, sig
  try { pub = unb64(r.publicKey); sig = unb64(s.signature) } catch { fail('bad_signature', 'key or signature not base64') }
  if (pub.length !== 32 || sig.length !== 64) fail('bad_signature', 'bad key or signature length')
  if (!(await verifyEd25519(sig, canon, pub))) fail('bad_signature', 'receipt signature')
  if (r.peerId !== agentId(pub)) fail('bad_signature', 'peerId does not match the key')
  const c = env.cert
  if (c == null || typeof c !== 'object') fail('unvouched', 'no cert')
  if (publisher != null && c.node !== publisher) fail('signer_mismatch', `cert names ${c.node}, published by ${publisher}`)
  if (c.agentPublicKey !== r.publicKey) fail('signer_mismatch', 'cert is for another key')
  let nodePub, csig
  try { nodePub = ed25519PublicKeyOfPeer(c.node); csig = unb64(c.signature) } catch (e) { fail('signer_mismatch', String(e.message)) }
  if (!(await verifyEd25519(csig, certBytes(c.agentPublicKey, c.node), nodePub))) fail('signer_mismatch', 'bad cert signature')
  return env
}

// signReceipt fills peerId/publicKey/version, canonicalises, and returns
// the Signed record {id, receipt, signature} (receipt.Sign).
export async function signReceipt (r, seed) {
  const pub = await ed.getPublicKeyAsync(seed)
  r = { ...r, version: r.version || 1, peerId: agentId(pub), publicKey: b64(pub) }
  const canon = enc.encode(canonicalize(r))
  const sig = await ed.signAsync(canon, seed)
  return { id: hex(sha256(canon)), receipt: r, signature: b64(sig) }
}

// newReceipt returns a receipt with every field Go's receipt.Receipt
// marshals (a missing one would change the canonical bytes Go hashes).
export function newReceipt (f) {
  return {
    version: 1,
    project: f.project ?? 'browser',
    peerId: '',
    publicKey: '',
    runNumber: f.runNumber ?? 1,
    timestamp: f.timestamp ?? Date.now(),
    hypothesis: f.hypothesis ?? '',
    config: f.config ?? {},
    result: { valLoss: 0, trainLoss: 0, lossCurve: [], durationSec: 0, tokensPerSec: 0, totalTokens: 0, values: f.values ?? {} },
    improvement: f.improvement ?? 0,
    isNewBest: false,
    inspiredBy: null,
    gpu: null,
    domain: f.domain,
    campaign: f.campaign ?? 'browser',
    agent: f.agent ?? 'tab',
    seed: f.seed ?? 0,
    metric: { name: f.metricName ?? 'score', direction: f.direction ?? 'maximize', value: f.value ?? 0, testValue: f.testValue ?? 0 },
    parents: [],
    proposer: 'browser',
    baseline: false,
    noiseFloor: null,
    beatsNoiseFloor: false,
    artifacts: {}
  }
}
