// The same pool, made to outlive a server's idle close it learns of only on thaw:
// - an 'error' listener on the pool (node-postgres's documented requirement): the closed idle client is dropped
//   from the pool and its error logged, instead of being thrown;
// - one retry on a fresh connection when the query met a connection the server had already closed (the thaw
//   handed the event over before Node read the close). The query never reached the server, so it is safe to
//   repeat; a statement that is not idempotent would be retried only on these errors, as here.

const { Pool } = require('pg');
const { settings } = require('../../db');

const idle = process.env.POOL_IDLE_TIMEOUT_MS; // unset: pg's default, 10,000 ms
const pool = new Pool(settings(idle === undefined ? {} : { idleTimeoutMillis: Number(idle) }));

pool.on('error', (err) => {
  console.warn(`idle connection closed by the server: ${err.code || ''} ${err.message}`);
});

// What a connection closed by the server while the environment was frozen fails with on first use.
const CLOSED = new Set(['57P01', '57P05', 'ECONNRESET', 'EPIPE']);

function closedConnection(err) {
  return CLOSED.has(err.code) || /^Connection terminated/.test(err.message) || /not queryable/.test(err.message);
}

async function query(text) {
  try {
    return await pool.query(text);
  } catch (err) {
    if (!closedConnection(err)) throw err;
    console.warn(`retrying on a fresh connection: ${err.code || ''} ${err.message}`);
    return pool.query(text); // the failed client was removed from the pool: this one connects anew
  }
}

exports.handler = async () => {
  const { rows } = await query('SELECT pg_backend_pid() AS pid');
  return { backendPid: rows[0].pid };
};
