// The live feed: Server-Sent Events read with fetch (so the bearer token rides in a header, which
// EventSource cannot send), reconnecting with a growing pause when the gateway goes away.

import { AuthError, headers } from "./api.js";

export function startFeed(path, { onEvent, onState }) {
  let stopped = false;
  let pause = 500;
  let controller = null;

  async function connect() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal });
        if (response.status === 401 || response.status === 403) throw new AuthError("token refused");
        if (!response.ok || !response.body) throw new Error(`feed: ${response.status}`);
        onState("live");
        pause = 500;
        await read(response.body.getReader());
      } catch (err) {
        if (stopped) return;
        if (err instanceof AuthError) { onState("unauthorized"); return; }
      }
      if (stopped) return;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 5000);
    }
  }

  async function read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length) onEvent(event, JSON.parse(data.join("\n")));
      }
    }
  }

  connect();
  return () => { stopped = true; if (controller) controller.abort(); };
}
