/** `deno task bench`: every benchmark, each printing its own table with ratios against a peer. */
import { benchHttp } from "./bench_http.ts";
import { benchSends } from "./bench_sends.ts";
import { benchStore } from "./bench_store.ts";

await benchHttp();
await benchStore();
// 64 clients, then 256: more clients at once means larger group commits.
await benchSends(5, 64);
await benchSends(5, 256);
