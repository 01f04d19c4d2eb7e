// Drives a running `quire serve` with the official OpenAI client for Node and prints one JSON line
// with what it saw; test_serve checks it. Usage: node openai_client.mjs BASE_URL PLAIN_MODEL LIBRARY_MODEL
import OpenAI from "openai";

const [baseURL, plainModel, libraryModel] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused-on-loopback", maxRetries: 0, timeout: 120000 });
const question = [{ role: "user", content: "Who kept the light?" }];
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const plain = await client.chat.completions.create({ model: plainModel, messages: question, max_tokens: 12, temperature: 0 });
out.plain = { object: plain.object, content: plain.choices[0].message.content, finish: plain.choices[0].finish_reason, usage: plain.usage };

const stream = await client.chat.completions.create({
  model: plainModel, messages: question, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let streamed = "";
let chunks = 0;
let finish = null;
let usage = null;
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.object !== "chat.completion.chunk") throw new Error("unexpected chunk object " + chunk.object);
  if (chunk.choices.length) {
    streamed += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  if (chunk.usage) usage = chunk.usage;
}
out.stream = { content: streamed, chunks, finish, usage };

const library = await client.chat.completions.create({ model: libraryModel, messages: question, max_tokens: 8, temperature: 0 });
out.library = { content: library.choices[0].message.content, usage: library.usage };

try {
  await client.chat.completions.create({ model: "no-such-model", messages: question });
  out.notFound = "no error";
} catch (e) {
  out.notFound = { status: e.status, message: e.message };
}
try {
  await client.chat.completions.create({ model: plainModel, messages: question, temperature: 7 });
  out.badRequest = "no error";
} catch (e) {
  out.badRequest = { status: e.status, message: e.message };
}
console.log(JSON.stringify(out));
