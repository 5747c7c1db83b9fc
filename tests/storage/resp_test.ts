import assert from "node:assert/strict";
import {
  encodeCommand,
  RespDecoder,
  type RespDecoderOptions,
  RespEncoder,
  RespError,
  RespProtocolError,
  type RespReply,
  utf8Length,
} from "../../lib/storage/resp.ts";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** Feeds `chunks` in order and returns every reply decoded. */
function decode(chunks: Uint8Array[], options?: RespDecoderOptions): RespReply[] {
  const decoder = new RespDecoder(options);
  const replies: RespReply[] = [];
  for (const chunk of chunks) decoder.feed(chunk, (reply) => replies.push(reply));
  assert.equal(decoder.partial, false, "a whole stream leaves nothing partial");
  assert.equal(decoder.buffered, 0);
  return replies;
}

/** Every way the tests cut a stream: whole, byte by byte, and in two at each offset. */
function splits(data: Uint8Array): [string, Uint8Array[]][] {
  const ways: [string, Uint8Array[]][] = [
    ["whole", [data]],
    ["byte by byte", [...data].map((b) => Uint8Array.of(b))],
  ];
  for (let i = 1; i < data.length; i++) {
    ways.push([`split at ${i}`, [data.slice(0, i), data.slice(i)]]);
  }
  return ways;
}

const TABLE: [string, string, RespReply[]][] = [
  ["a simple string", "+OK\r\n", ["OK"]],
  ["an empty simple string", "+\r\n", [""]],
  ["simple strings that start like OK", "+OKAY\r\n+O\r\n+Ok\r\n", ["OKAY", "O", "Ok"]],
  ["an error", "-ERR unknown command 'x'\r\n", [new RespError("ERR unknown command 'x'")]],
  ["zero", ":0\r\n", [0]],
  ["a negative integer", ":-12\r\n", [-12]],
  ["the largest safe integer", ":9007199254740991\r\n", [9007199254740991]],
  ["an integer beyond 2^53 as bigint", ":9007199254740993\r\n", [9007199254740993n]],
  ["the smallest 64-bit integer", ":-9223372036854775808\r\n", [-9223372036854775808n]],
  ["a bulk string", "$5\r\nhello\r\n", ["hello"]],
  ["an empty bulk string", "$0\r\n\r\n", [""]],
  ["a null bulk string", "$-1\r\n", [null]],
  ["a bulk string holding CRLF", "$4\r\na\r\nb\r\n", ["a\r\nb"]],
  ["a bulk string of multi-byte UTF-8", "$10\r\nhé€😀\r\n", ["hé€😀"]],
  ["an empty array", "*0\r\n", [[]]],
  ["a null array", "*-1\r\n", [null]],
  ["an array of mixed replies", "*4\r\n:1\r\n$-1\r\n+x\r\n-WRONGTYPE no\r\n", [[
    1,
    null,
    "x",
    new RespError("WRONGTYPE no"),
  ]]],
  ["nested arrays", "*3\r\n*2\r\n:1\r\n$1\r\na\r\n*0\r\n*1\r\n*1\r\n+deep\r\n", [[[1, "a"], [], [[
    "deep",
  ]]]]],
  ["a pub/sub message", "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", [[
    "message",
    "ch",
    "hi",
  ]]],
  ["several replies in one stream", "+OK\r\n:7\r\n*1\r\n$1\r\nz\r\n$-1\r\n-ERR x\r\n", [
    "OK",
    7,
    ["z"],
    null,
    new RespError("ERR x"),
  ]],
];

for (const [name, wire, expected] of TABLE) {
  Deno.test(`decoder reads ${name} however the bytes are split`, () => {
    for (const [how, chunks] of splits(bytes(wire))) {
      assert.deepEqual(decode(chunks), expected, how);
    }
  });
}

Deno.test("decoder gives bulk strings as bytes when asked", () => {
  const wire = Uint8Array.of(...bytes("*2\r\n$3\r\n"), 0, 255, 10, ...bytes("\r\n+ok\r\n"));
  for (const [how, chunks] of splits(wire)) {
    assert.deepEqual(decode(chunks, { bulk: "bytes" }), [[Uint8Array.of(0, 255, 10), "ok"]], how);
  }
});

Deno.test("error replies carry their code", () => {
  assert.equal(new RespError("NOSCRIPT No matching script.").code, "NOSCRIPT");
  assert.equal(new RespError("LOADING").code, "LOADING");
});

Deno.test("decoder hands a reply over as soon as it is complete", () => {
  const decoder = new RespDecoder();
  const replies: RespReply[] = [];
  decoder.feed(bytes("*2\r\n$3\r\nabc\r\n$4\r\nab"), (r) => replies.push(r));
  assert.equal(replies.length, 0);
  assert.equal(decoder.partial, true);
  assert.equal(decoder.buffered, "$4\r\nab".length, "only the unfinished element is kept");
  decoder.feed(bytes("cd\r\n+next\r\n:"), (r) => replies.push(r));
  assert.deepEqual([...replies], [["abc", "abcd"], "next"]);
  assert.equal(decoder.buffered, 1);
  decoder.feed(bytes("5\r\n"), (r) => replies.push(r));
  assert.deepEqual(replies, [["abc", "abcd"], "next", 5]);
  assert.equal(decoder.partial, false);
});

Deno.test("decoder does not keep chunks it parsed: later chunks cannot change earlier replies", () => {
  const decoder = new RespDecoder({ bulk: "bytes" });
  const replies: RespReply[] = [];
  const chunk = bytes("$3\r\nabc\r\n$3\r\nde");
  decoder.feed(chunk, (r) => replies.push(r));
  chunk.fill(120);
  decoder.feed(bytes("f\r\n"), (r) => replies.push(r));
  assert.deepEqual(replies.map((r) => text(r as Uint8Array)), ["abc", "def"]);
});

const BAD: [string, string, string][] = [
  ["an unknown type byte", "?x\r\n", "unexpected type byte 0x3f"],
  ["a RESP3 type byte", "%1\r\n", "unexpected type byte 0x25"],
  ["a length that is not a number", "$x\r\n", "is not an integer"],
  ["an empty length", "*\r\n", "is not an integer"],
  ["a length below -1", "$-2\r\n", "out of range"],
  ["a bulk string longer than its length", "$1\r\nab\r\n", "not followed by CRLF"],
  ["an integer over 64 bits", ":9223372036854775808\r\n", "does not fit in 64 bits"],
  ["a number line without an end", ":" + "1".repeat(30), "longer than 21 digits"],
];

for (const [name, wire, reason] of BAD) {
  Deno.test(`decoder rejects ${name} with a protocol error`, () => {
    for (
      const [how, chunks] of [["whole", [bytes(wire)]], [
        "byte by byte",
        splits(bytes(wire))[1]![1],
      ]] as const
    ) {
      const decoder = new RespDecoder();
      assert.throws(
        () => {
          for (const chunk of chunks) decoder.feed(chunk, () => {});
        },
        (error: Error) =>
          error instanceof RespProtocolError &&
          error.message.startsWith("Cannot decode Redis reply: ") &&
          error.message.includes(reason),
        how,
      );
    }
  });
}

Deno.test("a bulk string over the limit fails at its header, before its bytes arrive", () => {
  const decoder = new RespDecoder({ maxReplyBytes: 64 });
  assert.throws(() => decoder.feed(bytes("$100\r\n"), () => {}), /larger than 64 bytes/);
  // Refuses anything after a protocol error: the stream cannot be trusted.
  assert.throws(() => decoder.feed(bytes("+OK\r\n"), () => {}), RespProtocolError);
  decoder.reset();
  assert.deepEqual(decodeWith(decoder, "+OK\r\n"), ["OK"]);
});

Deno.test("an array whose elements add up over the limit is a protocol error", () => {
  const element = "$10\r\n0123456789\r\n"; // 17 bytes
  const within = "*3\r\n" + element.repeat(3); // 55 bytes
  assert.deepEqual(decode([bytes(within)], { maxReplyBytes: 55 }).length, 1);
  for (const [how, chunks] of splits(bytes(within + within))) {
    // The limit is per reply: two replies of 55 bytes each pass under a limit of 55.
    assert.equal(decode(chunks, { maxReplyBytes: 55 }).length, 2, how);
  }
  const decoder = new RespDecoder({ maxReplyBytes: 54 });
  assert.throws(() => decodeWith(decoder, within), /larger than 54 bytes/);
});

Deno.test("a simple string without an end is buffered only up to the limit", () => {
  const decoder = new RespDecoder({ maxReplyBytes: 1024 });
  decoder.feed(bytes("+" + "a".repeat(1000)), () => {});
  assert.equal(decoder.buffered, 1001);
  assert.throws(() => decoder.feed(bytes("a".repeat(100)), () => {}), /larger than 1024 bytes/);
  assert.equal(decoder.buffered, 0, "a failed decoder lets its buffer go");
});

Deno.test("decoder takes a large bulk string arriving in many small chunks", () => {
  const payload = "x".repeat(1_000_000);
  const wire = bytes(`$${payload.length}\r\n${payload}\r\n+after\r\n`);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < wire.length; i += 1000) chunks.push(wire.subarray(i, i + 1000));
  assert.deepEqual(decode(chunks), [payload, "after"]);
});

function decodeWith(decoder: RespDecoder, wire: string): RespReply[] {
  const replies: RespReply[] = [];
  decoder.feed(bytes(wire), (r) => replies.push(r));
  return replies;
}

Deno.test("encoder writes a command as an array of bulk strings", () => {
  assert.equal(
    text(encodeCommand(["SET", "key", "value"])),
    "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
  );
  assert.equal(text(encodeCommand(["PING"])), "*1\r\n$4\r\nPING\r\n");
  assert.equal(text(encodeCommand(["GET", ""])), "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
});

Deno.test("encoder writes numbers and bigints as decimal text and bytes as they are", () => {
  assert.equal(
    text(encodeCommand(["INCRBY", "n", 42, -7, 1.5, 12345678901234567890n])),
    "*6\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$2\r\n42\r\n$2\r\n-7\r\n$3\r\n1.5\r\n$20\r\n12345678901234567890\r\n",
  );
  assert.deepEqual(
    encodeCommand(["SET", Uint8Array.of(0, 13, 10, 255)]),
    Uint8Array.of(...bytes("*2\r\n$3\r\nSET\r\n$4\r\n"), 0, 13, 10, 255, 13, 10),
  );
});

Deno.test("encoder counts UTF-8 bytes, not UTF-16 units, in bulk lengths", () => {
  const samples = [
    "é",
    "€",
    "😀",
    "hé€😀",
    "a".repeat(63) + "é",
    "ü".repeat(500),
    "\ud800",
    "x\udc00y",
    "\ud83d",
  ];
  for (const sample of samples) {
    const utf8 = new TextEncoder().encode(sample);
    assert.equal(utf8Length(sample), utf8.length, JSON.stringify(sample));
    assert.deepEqual(
      encodeCommand([sample]),
      Uint8Array.of(...bytes(`*1\r\n$${utf8.length}\r\n`), ...utf8, 13, 10),
      JSON.stringify(sample),
    );
  }
});

Deno.test("encoded commands decode back to the same strings", () => {
  const args = ["EVALSHA", "a".repeat(40), "2", "k:é", "k:😀", "a".repeat(100_000), "", "\r\n"];
  assert.deepEqual(decode([encodeCommand(args)]), [args]);
});

Deno.test("encoder batches commands until take() and keeps the taken bytes while the next batch fills", () => {
  const encoder = new RespEncoder(8);
  encoder.append(["INCR", "a"]);
  encoder.append(["INCR", "b"]);
  const first = encoder.take();
  assert.equal(text(first), "*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*2\r\n$4\r\nINCR\r\n$1\r\nb\r\n");
  assert.equal(encoder.length, 0);
  encoder.append(["GET", "x".repeat(100)]);
  assert.equal(text(first), "*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*2\r\n$4\r\nINCR\r\n$1\r\nb\r\n");
  assert.equal(text(encoder.take()), `*2\r\n$3\r\nGET\r\n$100\r\n${"x".repeat(100)}\r\n`);
});

Deno.test("encoder refuses a bad argument and keeps the commands before it", () => {
  const encoder = new RespEncoder();
  encoder.append(["PING"]);
  for (const bad of [NaN, Infinity, {} as unknown as string, null as unknown as string]) {
    assert.throws(() => encoder.append(["SET", "k", bad]), TypeError);
  }
  assert.throws(() => encoder.append([]), TypeError);
  assert.equal(text(encoder.take()), "*1\r\n$4\r\nPING\r\n");
});
