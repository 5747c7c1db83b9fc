import type { StaticAsset } from "../lib/http/static_files.ts";
import app from "./app.js" with { type: "text" };
import commands from "./commands.js" with { type: "text" };
import icon from "./icon.svg" with { type: "text" };
import page from "./index.html" with { type: "text" };
import render from "./render.js" with { type: "text" };
import storage from "./storage.js" with { type: "text" };
import style from "./style.css" with { type: "text" };
import tabs from "./tabs.js" with { type: "text" };
import text from "./text.js" with { type: "text" };

const JS = "text/javascript; charset=utf-8";

/** The web page, embedded in the program so `deno compile` carries it. */
export const ASSETS: StaticAsset[] = [
  { path: "/index.html", contentType: "text/html; charset=utf-8", text: page },
  { path: "/app.js", contentType: JS, text: app },
  { path: "/commands.js", contentType: JS, text: commands },
  { path: "/render.js", contentType: JS, text: render },
  { path: "/storage.js", contentType: JS, text: storage },
  { path: "/tabs.js", contentType: JS, text: tabs },
  { path: "/text.js", contentType: JS, text: text },
  { path: "/style.css", contentType: "text/css; charset=utf-8", text: style },
  { path: "/icon.svg", contentType: "image/svg+xml", text: icon },
];
