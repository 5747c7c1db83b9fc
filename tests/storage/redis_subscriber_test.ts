/** `RedisSubscriber` against a real `redis-server`: delivery, re-subscribing, and its callbacks. */
import assert from "node:assert/strict";
import { RedisClient, RedisUnavailableError } from "../../lib/storage/redis_client.ts";
import {
  RedisSubscriber,
  type RedisSubscriberOptions,
} from "../../lib/storage/redis_subscriber.ts";
import { type RedisServer, redisTest, within } from "../_redis.ts";

/** What a subscriber saw, in order, and a way to wait for more. */
class Recorder {
  readonly messages: string[] = [];
  subscribed = 0;
  #waiters: { count: () => number; n: number; resolve: () => void }[] = [];

  onMessage = (channel: string, message: string, pattern: string | undefined): void => {
    this.messages.push(
      pattern === undefined ? `${channel}:${message}` : `${pattern}>${channel}:${message}`,
    );
    this.#wake();
  };

  onSubscribed = (): void => {
    this.subscribed++;
    this.#wake();
  };

  /** Resolves once `n` messages have arrived. */
  messagesReach(n: number): Promise<void> {
    return within(
      3000,
      `${n} messages (have ${this.messages.length})`,
      this.#until(() => this.messages.length, n),
    );
  }

  /** Resolves once the subscriptions were established `n` times. */
  subscribedReach(n: number): Promise<void> {
    return within(
      5000,
      `subscribed ${n} times (have ${this.subscribed})`,
      this.#until(() => this.subscribed, n),
    );
  }

  #until(count: () => number, n: number): Promise<void> {
    if (count() >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, n, resolve }));
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (w.count() < w.n) return true;
      w.resolve();
      return false;
    });
  }
}

async function setup(server: RedisServer, options: Partial<RedisSubscriberOptions> = {}) {
  const recorder = new Recorder();
  const subscriber = new RedisSubscriber({
    ...server.clientOptions(),
    channels: ["room:a"],
    onMessage: recorder.onMessage,
    onSubscribed: recorder.onSubscribed,
    ...options,
  });
  const publisher = new RedisClient(server.clientOptions());
  await publisher.connect();
  await subscriber.connect();
  return {
    recorder,
    subscriber,
    publisher,
    publish: (channel: string, message: string) => publisher.command("PUBLISH", channel, message),
    async [Symbol.asyncDispose]() {
      await subscriber.close();
      await publisher.close();
    },
  };
}

redisTest(
  "messages of channels and patterns arrive in the order they were published",
  async (server) => {
    await using t = await setup(server, { patterns: ["news:*"] });
    assert.equal(t.recorder.subscribed, 1, "connect() established the subscriptions once");
    const sent = Array.from(
      { length: 1000 },
      (_, i) => t.publish(i % 2 ? "room:a" : "news:x", `m${i} é`),
    );
    assert.ok((await Promise.all(sent)).every((receivers) => receivers === 1));
    await t.recorder.messagesReach(1000);
    assert.deepEqual(
      t.recorder.messages,
      Array.from({ length: 1000 }, (_, i) => i % 2 ? `room:a:m${i} é` : `news:*>news:x:m${i} é`),
    );
  },
);

redisTest(
  "onSubscribed runs after Redis confirmed: a message published from it is delivered",
  async (server) => {
    const recorder = new Recorder();
    const publisher = new RedisClient(server.clientOptions());
    const probes: Promise<unknown>[] = [];
    const subscriber = new RedisSubscriber({
      ...server.clientOptions(),
      channels: ["room:a", "room:b"],
      onMessage: recorder.onMessage,
      onSubscribed() {
        recorder.onSubscribed();
        // The caller's catch-up reads here; anything newer must already reach the subscription.
        probes.push(publisher.command("PUBLISH", "room:b", `probe ${recorder.subscribed}`));
      },
    });
    try {
      await publisher.connect();
      await subscriber.connect();
      assert.deepEqual(await Promise.all(probes), [1], "the subscriber was listening already");
      await recorder.messagesReach(1);
      assert.deepEqual(recorder.messages, ["room:b:probe 1"]);
    } finally {
      await subscriber.close();
      await publisher.close();
    }
  },
);

redisTest(
  "after CLIENT KILL TYPE pubsub it re-subscribes by itself and calls onSubscribed again",
  async (server) => {
    await using t = await setup(server, { patterns: ["news:*"] });
    const down = new Promise((resolve) => t.subscriber.on("down", resolve));
    const up = new Promise<void>((resolve) => t.subscriber.on("up", resolve));
    assert.equal(
      await server.killPubsubClients(),
      1,
      "only the subscriber's connection is pub/sub",
    );
    assert.ok(await within(2000, "down event", down) instanceof RedisUnavailableError);
    await t.recorder.subscribedReach(2);
    await within(1000, "up event", up);
    assert.equal(t.publisher.connected, true, "the command connection was not touched");
    assert.equal(await t.publish("room:a", "after"), 1);
    assert.equal(await t.publish("news:y", "after"), 1);
    await t.recorder.messagesReach(2);
    assert.deepEqual(t.recorder.messages, ["room:a:after", "news:*>news:y:after"]);
  },
);

redisTest("after a Redis restart it re-subscribes and calls onSubscribed again", async (server) => {
  await using t = await setup(server);
  const down = new Promise((resolve) => t.subscriber.on("down", resolve));
  await server.stop();
  await within(2000, "down", down);
  assert.equal(t.subscriber.connected, false);
  await server.restart();
  await t.recorder.subscribedReach(2);
  await within(
    3000,
    "publisher up",
    t.publisher.connected
      ? Promise.resolve()
      : new Promise((r) => t.publisher.on("up", () => r(undefined))),
  );
  assert.equal(await t.publish("room:a", "back"), 1);
  await t.recorder.messagesReach(1);
  assert.deepEqual(t.recorder.messages, ["room:a:back"]);
});

redisTest(
  "a stalled pub/sub connection is found by its PING and re-established",
  async (server) => {
    await using t = await setup(server, { pingIntervalMs: 50, commandTimeoutMs: 150 });
    const down = new Promise<Error>((resolve) => t.subscriber.on("down", resolve));
    await server.cli("CLIENT", "PAUSE", "1200", "ALL");
    const error = await within(2000, "down event", down);
    assert.match(error.message, /did not answer within 150 ms/);
    await t.recorder.subscribedReach(2);
    assert.equal(await t.publish("room:a", "awake"), 1);
    await t.recorder.messagesReach(1);
  },
);

redisTest(
  "subscribe and unsubscribe change what arrives; both wait for Redis's confirmation",
  async (server) => {
    await using t = await setup(server);
    await t.subscriber.subscribe("room:b", "room:b", "room:c");
    assert.deepEqual(t.subscriber.channels, ["room:a", "room:b", "room:c"]);
    assert.equal(await t.publish("room:b", "1"), 1);
    await t.subscriber.unsubscribe("room:a");
    await t.subscriber.psubscribe("x:*");
    assert.equal(await t.publish("room:a", "dropped"), 0);
    assert.equal(await t.publish("x:1", "2"), 1);
    await t.subscriber.punsubscribe("x:*");
    assert.equal(await t.publish("x:1", "dropped"), 0);
    assert.equal(await t.publish("room:c", "3"), 1);
    await t.recorder.messagesReach(3);
    assert.deepEqual(t.recorder.messages, ["room:b:1", "x:*>x:1:2", "room:c:3"]);
    assert.equal(t.recorder.subscribed, 1, "changes are not re-establishments");
  },
);

redisTest("a channel added while Redis is away is subscribed when it returns", async (server) => {
  await using t = await setup(server);
  const down = new Promise((resolve) => t.subscriber.on("down", resolve));
  await server.stop();
  await within(2000, "down", down);
  await assert.rejects(t.subscriber.subscribe("room:late"), RedisUnavailableError);
  await server.restart();
  await t.recorder.subscribedReach(2);
  await within(
    3000,
    "publisher up",
    t.publisher.connected
      ? Promise.resolve()
      : new Promise((r) => t.publisher.on("up", () => r(undefined))),
  );
  assert.equal(await t.publish("room:late", "caught"), 1);
  await t.recorder.messagesReach(1);
});

redisTest("a subscriber with a password logs in before it subscribes", async (server) => {
  await using t = await setup(server);
  assert.equal(await t.publish("room:a", "hi"), 1);
  await t.recorder.messagesReach(1);
  const wrong = new RedisSubscriber({
    ...server.clientOptions({ password: "nope" }),
    channels: ["room:a"],
    onMessage() {},
  });
  await assert.rejects(
    wrong.connect(),
    /^RedisConnectError: Cannot connect to Redis .*: WRONGPASS/,
  );
}, { password: "pub sub" });

redisTest(
  "a subscriber with nothing subscribed stays connected through its PINGs",
  async (server) => {
    await using t = await setup(server, { channels: [], pingIntervalMs: 10 });
    let downs = 0;
    t.subscriber.on("down", () => downs++);
    const pings = async () => {
      const text = await server.cli("INFO", "commandstats");
      return Number(/cmdstat_ping:calls=(\d+)/.exec(text)?.[1] ?? 0);
    };
    const deadline = Date.now() + 3000;
    while ((await pings()) < 5) assert.ok(Date.now() < deadline, "five PINGs within 3 s");
    assert.equal(downs, 0);
    assert.equal(t.subscriber.connected, true);
    assert.equal(t.recorder.subscribed, 1);
  },
);
