// The fix: a pool whose connections are checked before use. A ping with a short query_timeout finds a connection
// whose flow the network dropped (no answer comes), the client is released with the error, which destroys it,
// and the pool connects anew. The pool's idleTimeoutMillis (10 s) helps too, on a thaw after a long freeze: its
// expired timer usually fires before the next event is handled and closes the idle connection first.

const { Pool } = require('pg');
const { settings } = require('../../db');

const PING_TIMEOUT_MS = Number(process.env.PING_TIMEOUT_MS || 300);

const pool = new Pool(settings());

pool.on('error', (err) => {
  console.warn(`idle connection failed: ${err.code || ''} ${err.message}`);
});

async function liveClient() {
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    try {
      await client.query({ text: 'SELECT 1', query_timeout: PING_TIMEOUT_MS });
      return client;
    } catch (err) {
      client.release(err); // released with an error: destroyed, not returned to the pool
      if (attempt === 2) throw err;
      console.warn(`pooled connection did not answer the ping (${err.message}): connecting anew`);
    }
  }
}

exports.handler = async () => {
  const client = await liveClient();
  try {
    const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
    return { backendPid: rows[0].pid };
  } finally {
    client.release();
  }
};
