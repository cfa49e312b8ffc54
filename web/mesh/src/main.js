// The browser peer of the Hyperspace knowledge mesh: a js-libp2p node
// (WebSockets, Noise, Yamux, GossipSub) that dials the node serving this
// page, joins the research topics, verifies every finding before showing
// it, and can publish receipts of its own agent. State for tests and the
// console: window.hsMesh.
import { createLibp2p } from 'libp2p'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { generateKeyPairFromSeed, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import * as ed from '@noble/ed25519'
import { msgId, staticBits, verifyEnvelope, signReceipt, newReceipt, certBytes, b64, unb64, canonicalize, agentId, RESEARCH_PREFIX } from './verify.js'

const $ = (id) => document.getElementById(id)
const enc = new TextEncoder()

const state = {
  status: 'idle',
  error: null,
  peerId: null,
  powTries: 0,
  powBits: 0,
  bootstrap: null,
  received: [], // verified findings: {id, topic, from, domain, hypothesis, metric, receivedAt}
  rejected: [], // {topic, from, reason, receivedAt}
  published: [],
  node: null,
  agent: null, // {seed, pub, cert}
  runNumber: 0
}

function log (msg) {
  const el = $('log')
  if (el) el.textContent = `${new Date().toISOString().slice(11, 23)} ${msg}\n` + el.textContent.slice(0, 20000)
}

function setStatus (s, err) {
  state.status = s
  if (err) state.error = String(err?.message ?? err)
  const el = $('status')
  if (el) el.textContent = s + (state.error ? ` (${state.error})` : '')
}

// mintKey finds an Ed25519 libp2p key whose protobuf public key passes the
// nodes' static identity puzzle (internal/pow: d leading zero bits of
// SHA-256(SHA-256(key))); 2^d tries on average.
async function mintKey (d) {
  for (let tries = 1; ; tries++) {
    const seed = crypto.getRandomValues(new Uint8Array(32))
    const key = await generateKeyPairFromSeed('Ed25519', seed)
    const bits = staticBits(publicKeyToProtobuf(key.publicKey))
    if (bits >= d) {
      state.powTries = tries
      state.powBits = bits
      return key
    }
    if (tries % 512 === 0) await new Promise((resolve) => setTimeout(resolve, 0))
  }
}

async function fetchBootstrap (token) {
  const headers = token ? { Authorization: 'Bearer ' + token } : {}
  const res = await fetch('/api/v1/mesh/bootstrap', { headers })
  const body = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(`GET /api/v1/mesh/bootstrap: ${res.status} ${body?.error?.message ?? ''}`)
  return body
}

function render () {
  const ul = $('findings')
  if (!ul) return
  ul.replaceChildren(...state.received.slice(-200).reverse().map((f) => {
    const li = document.createElement('li')
    li.textContent = `${f.domain} ${f.metric?.name}=${f.metric?.value} ${f.hypothesis} [${f.id.slice(0, 8)} by ${f.agent} via ${f.from.slice(-6)}]`
    return li
  }))
  const c = $('counts')
  if (c) c.textContent = `${state.received.length} verified, ${state.rejected.length} rejected`
}

async function onMessage (evt) {
  const m = evt.detail
  if (!m.topic.startsWith(RESEARCH_PREFIX)) return
  const receivedAt = performance.timeOrigin + performance.now()
  const from = m.type === 'signed' ? m.from.toString() : null
  const domain = m.topic.slice(RESEARCH_PREFIX.length).replace(/\/1$/, '')
  try {
    const env = await verifyEnvelope(m.data, from, domain)
    const r = env.receipt.receipt
    const verifiedAt = performance.timeOrigin + performance.now()
    state.received.push({ id: env.receipt.id, topic: m.topic, from, domain: r.domain, agent: r.peerId, hypothesis: r.hypothesis, metric: r.metric, timestamp: r.timestamp, receivedAt, verifiedAt })
  } catch (e) {
    state.rejected.push({ topic: m.topic, from, reason: e.reason ?? 'malformed', error: String(e.message), receivedAt })
    log(`rejected a message from ${from}: ${e.message}`)
  }
  render()
}

async function start ({ token } = {}) {
  if (state.node) return state.peerId
  setStatus('fetching bootstrap')
  const boot = await fetchBootstrap(token)
  state.bootstrap = boot
  setStatus(`minting identity (difficulty ${boot.powDifficulty})`)
  const t0 = performance.now()
  const privateKey = await mintKey(boot.powDifficulty ?? 0)
  log(`identity minted: ${state.powTries} tries, ${state.powBits} bits, ${(performance.now() - t0).toFixed(0)} ms`)
  const node = await createLibp2p({
    privateKey,
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The node serving this page is on a private (often loopback) address.
    connectionGater: { denyDialMultiaddr: async () => false },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        // The Go nodes' message ids (p2p/envelope.go) and signing policy.
        msgIdFn: (msg) => msgId(msg.topic, msg.data),
        globalSignaturePolicy: 'StrictSign',
        emitSelf: false,
        allowPublishToZeroTopicPeers: false,
        floodPublish: true
      })
    }
  })
  state.node = node
  state.peerId = node.peerId.toString()
  // The agent: its own Ed25519 key, vouched for by this tab's libp2p key as
  // Go nodes vouch for theirs (admission.Cert).
  const seed = crypto.getRandomValues(new Uint8Array(32))
  const agentPub = b64(await ed.getPublicKeyAsync(seed))
  const certSig = await privateKey.sign(certBytes(agentPub, state.peerId))
  state.agent = { seed, cert: { agentPublicKey: agentPub, node: state.peerId, signature: b64(certSig) } }

  const ps = node.services.pubsub
  ps.addEventListener('message', onMessage)
  for (const t of boot.topics) ps.subscribe(t)
  setStatus('dialling')
  let lastErr
  for (const a of boot.addrs) {
    try {
      await node.dial(multiaddr(a))
      lastErr = null
      break
    } catch (e) {
      lastErr = e
      log(`dial ${a}: ${e.message}`)
    }
  }
  if (lastErr) throw lastErr
  setStatus('connected')
  const p = $('peer')
  if (p) p.textContent = state.peerId
  log(`joined ${boot.topics.join(', ')} via ${boot.peerId}`)
  return state.peerId
}

// publish signs a receipt by this tab's agent and gossips it on its
// domain's topic; tamper (tests) alters the signed content afterwards.
async function publish (fields, { tamper = false } = {}) {
  if (!state.node) throw new Error('not started')
  const r = newReceipt({ runNumber: ++state.runNumber, ...fields })
  const signed = await signReceipt(r, state.agent.seed)
  if (tamper) signed.receipt.hypothesis += ' (tampered)'
  const env = { receipt: signed, cert: state.agent.cert }
  const topic = RESEARCH_PREFIX + r.domain + '/1'
  await state.node.services.pubsub.publish(topic, enc.encode(JSON.stringify(env)))
  state.published.push(signed.id)
  return signed.id
}

function topicPeers (topic) {
  return state.node ? state.node.services.pubsub.getSubscribers(topic).map(String) : []
}

function meshPeers (topic) {
  return state.node ? state.node.services.pubsub.getMeshPeers(topic).map(String) : []
}

// The verification functions, for tests that check them against Go's
// (byte strings as base64).
const verify = {
  canonicalize: (json) => canonicalize(JSON.parse(json)),
  msgId: (topic, data) => new TextDecoder().decode(msgId(topic, unb64(data))),
  staticBits: (key) => staticBits(unb64(key)),
  agentId: (pub) => agentId(unb64(pub)),
  verifyEnvelope: (data, publisher, domain) => verifyEnvelope(unb64(data), publisher, domain).then(() => 'ok', (e) => e.reason ?? String(e))
}

// mint times minting an identity at difficulty d (benchmarks).
async function mint (d) {
  const t0 = performance.now()
  await mintKey(d)
  return { tries: state.powTries, ms: performance.now() - t0 }
}

// dial connects to one more peer (a multiaddr with /p2p/<id>).
async function dial (addr) {
  if (!state.node) throw new Error('not started')
  await state.node.dial(multiaddr(addr))
}

window.hsMesh = { state, start, publish, topicPeers, meshPeers, verify, mint, dial, get received () { return state.received }, get rejected () { return state.rejected } }

function init () {
  const q = new URLSearchParams(location.hash.slice(1))
  const tok = $('token')
  if (tok && q.get('token')) tok.value = q.get('token')
  const go = $('join')
  if (go) {
    go.addEventListener('click', () => {
      start({ token: tok?.value.trim() }).catch((e) => { setStatus('failed', e); log(e.stack ?? String(e)) })
    })
  }
  const pub = $('publish')
  if (pub) {
    pub.addEventListener('click', () => {
      const domain = state.bootstrap?.domains?.[0]
      publish({ domain, hypothesis: $('hypothesis').value || 'a finding from a browser tab', value: Math.random() })
        .then((id) => log(`published ${id}`), (e) => log(`publish: ${e.message}`))
    })
  }
  if (q.get('autostart') === '1' && go) go.click()
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init)
else init()
