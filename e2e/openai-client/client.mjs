// Drives a Hyperspace /v1 API with the official openai npm package and
// prints one JSON object of what it saw (e2e/openai_test.go checks it).
// Env: OPENAI_BASE_URL (…/v1), OPENAI_API_KEY (a Hyperspace read token),
// HS_CHAT_MODEL, HS_EMBED_MODEL.
import OpenAI from 'openai';

const client = new OpenAI({ maxRetries: 0, timeout: 120_000 });
const chatModel = process.env.HS_CHAT_MODEL;
const embedModel = process.env.HS_EMBED_MODEL;
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => ({ id: m.id, object: m.object, kind: m.kind }));

const chat = await client.chat.completions.create({
  model: chatModel,
  messages: [{ role: 'user', content: 'the boundary layer' }],
  temperature: 0,
  max_tokens: 24,
});
out.chat = { object: chat.object, content: chat.choices[0].message.content, finish: chat.choices[0].finish_reason, usage: chat.usage };

const again = await client.chat.completions.create({
  model: chatModel,
  messages: [{ role: 'user', content: 'the boundary layer' }],
  temperature: 0,
  max_tokens: 24,
});
out.chatAgain = again.choices[0].message.content;

const stream = await client.chat.completions.create({
  model: chatModel,
  messages: [{ role: 'user', content: 'the boundary layer' }],
  temperature: 0,
  max_tokens: 24,
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = '';
let chunks = 0;
let usageChunk = null;
let finish = null;
for await (const c of stream) {
  chunks++;
  if (c.usage) usageChunk = c.usage;
  if (c.choices.length > 0) {
    streamed += c.choices[0].delta.content ?? '';
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
}
out.stream = { content: streamed, chunks, usage: usageChunk, finish };

const noUsage = await client.chat.completions.create({
  model: chatModel,
  messages: [{ role: 'user', content: 'the wing' }],
  max_tokens: 8,
  seed: 42,
  temperature: 0.8,
  stream: true,
});
let sawUsage = false;
let seeded = '';
for await (const c of noUsage) {
  if (c.usage) sawUsage = true;
  if (c.choices.length > 0) seeded += c.choices[0].delta.content ?? '';
}
out.streamNoUsage = { sawUsage, content: seeded };

const comp = await client.completions.create({ model: chatModel, prompt: 'heat transfer', max_tokens: 16, temperature: 0 });
out.completion = { object: comp.object, text: comp.choices[0].text, finish: comp.choices[0].finish_reason };

// The SDK asks for base64 by default and decodes it to floats.
const embB64 = await client.embeddings.create({ model: embedModel, input: ['supersonic wing', 'boundary layer transition'] });
const embFloat = await client.embeddings.create({ model: embedModel, input: 'supersonic wing', encoding_format: 'float' });
const v0 = embB64.data[0].embedding;
out.embeddings = {
  n: embB64.data.length,
  dim: v0.length,
  norm: Math.sqrt(v0.reduce((s, x) => s + x * x, 0)),
  nonZero: v0.filter((x) => x !== 0).length,
  sameAsFloat: embFloat.data[0].embedding.length === v0.length && embFloat.data[0].embedding.every((x, i) => Math.abs(x - v0[i]) < 1e-6),
  usage: embB64.usage,
};

try {
  await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
  out.notFound = { error: 'no error raised' };
} catch (e) {
  out.notFound = { cls: e.constructor.name, status: e.status, code: e.code, param: e.param, type: e.type };
}
try {
  await client.chat.completions.create({ model: chatModel, messages: [{ role: 'user', content: 'x' }], temperature: 5 });
  out.badRequest = { error: 'no error raised' };
} catch (e) {
  out.badRequest = { cls: e.constructor.name, status: e.status, param: e.param };
}
try {
  const bad = new OpenAI({ apiKey: 'hs_not_a_token', maxRetries: 0 });
  await bad.models.list();
  out.badKey = { error: 'no error raised' };
} catch (e) {
  out.badKey = { cls: e.constructor.name, status: e.status };
}
console.log(JSON.stringify(out));
