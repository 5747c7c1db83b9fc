import type { StaticAsset } from "../lib/http/static_files.ts";
import app from "./app.js" with { type: "text" };
import icon from "./icon.svg" with { type: "text" };
import page from "./index.html" with { type: "text" };
import style from "./style.css" with { type: "text" };

/** The web page, embedded in the program so `deno compile` carries it. */
export const ASSETS: StaticAsset[] = [
  { path: "/index.html", contentType: "text/html; charset=utf-8", text: page },
  { path: "/app.js", contentType: "text/javascript; charset=utf-8", text: app },
  { path: "/style.css", contentType: "text/css; charset=utf-8", text: style },
  { path: "/icon.svg", contentType: "image/svg+xml", text: icon },
];
