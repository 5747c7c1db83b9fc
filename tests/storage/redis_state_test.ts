/**
 * The SharedState contract against `RedisState` on a real `redis-server` (one per case, with
 * `appendonly yes`): what one-process backends guarantee holds in Redis too. A "restart" restarts
 * Redis on its files and opens a new state on the same prefix, as a new instance would.
 */
import { RedisState } from "../../lib/storage/redis_state.ts";
import { REDIS_TOOLS, RedisServer } from "../_redis.ts";
import { runSharedStateContract } from "./shared_state_contract.ts";

runSharedStateContract("redis state", async (history) => {
  const redis = await RedisServer.start();
  const prefix = `t${crypto.randomUUID().slice(0, 8)}`;
  const open = () => RedisState.open({ redis: redis.clientOptions(), prefix, history });
  let state: RedisState;
  try {
    state = await open();
  } catch (error) {
    await redis.close();
    throw error;
  }
  return {
    state,
    restart: async () => {
      await state.close();
      await redis.stop();
      await redis.restart();
      state = await open();
      return state;
    },
    cleanup: () => redis.close(),
  };
}, {
  durable: true,
  failures: false,
  ...(!REDIS_TOOLS.server || !REDIS_TOOLS.cli
    ? { unavailable: "redis-server is not installed" }
    : {}),
});
