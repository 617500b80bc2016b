// The spec page's sample Node.js SSE client, verbatim except API_BASE, which
// comes from the environment (the spec already reads the key from
// DOCK_API_KEY). Below the marked line: a driver for the end-to-end tests.
const API_BASE = process.env.DOCK_API_BASE;
const API_KEY = process.env.DOCK_API_KEY;

async function createSession(pid, clientId) {
  const response = await fetch(`${API_BASE}/api/v1/verify/session`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${API_KEY}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ pid, clientId }),
  });

  if (!response.ok) {
    throw new Error(`createSession failed (${response.status})`);
  }

  const payload = await response.json();
  return payload.data;
}

async function streamSession(sid) {
  const streamResponse = await fetch(
    `${API_BASE}/api/v1/verify/session/${sid}/stream`,
    {
      headers: {
        Authorization: `Bearer ${API_KEY}`,
      },
    },
  );

  if (!streamResponse.ok) {
    throw new Error(`stream failed (${streamResponse.status})`);
  }

  const reader = streamResponse.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";

  while (true) {
    const { done, value } = await reader.read();
    if (done) break;

    buffer += decoder.decode(value, { stream: true });

    let eventBoundary;
    while ((eventBoundary = buffer.indexOf("\n\n")) !== -1) {
      const rawEvent = buffer.slice(0, eventBoundary);
      buffer = buffer.slice(eventBoundary + 2);

      const eventLine = rawEvent
        .split("\n")
        .find((line) => line.startsWith("event:"));
      const dataLine = rawEvent
        .split("\n")
        .find((line) => line.startsWith("data:"));

      if (!eventLine || !dataLine) continue;

      const eventName = eventLine.replace("event:", "").trim();
      const data = JSON.parse(dataLine.replace("data:", "").trim());

      if (eventName === "complete") {
        return data;
      }

      if (eventName === "expired") {
        throw new Error("Verification session expired before completion");
      }
    }
  }

  throw new Error("Stream closed before completion");
}

// ---- test driver (not part of the spec's sample) ----
// Prints one JSON line per step: {"created": data}, then {"result": data} or
// {"error": message}. The test completes the session between the two.
const [pid, clientId] = process.argv.slice(2);
try {
  const created = await createSession(pid, clientId);
  console.log(JSON.stringify({ created }));
  const result = await streamSession(created.sid);
  console.log(JSON.stringify({ result }));
} catch (e) {
  console.log(JSON.stringify({ error: e.message }));
}
