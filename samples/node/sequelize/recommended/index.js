// The guide's recommended configuration: pool within an invocation, never across invocations. The pool is
// re-created at the start of every invocation and closed at its end (close() waits for the queries in progress), so
// nothing of the database - connections, pool timers, queries - outlives the invocation that started it.

const { connect } = require('../db');

// evict: the function's timeout, so a pool left by an invocation that timed out is cleaned up on the next one.
const TIMEOUT_MS = Number(process.env.FUNCTION_TIMEOUT_MS || 10000);

let sequelize = null;

async function loadSequelize() {
  const instance = connect({
    pool: { max: 2, min: 0, idle: 0, acquire: 3000, evict: TIMEOUT_MS },
    dialectOptions: { connectTimeout: 5000 },
  });
  await instance.authenticate();
  return instance;
}

async function withSequelize(work) {
  // re-use the sequelize instance across invocations
  if (!sequelize) {
    sequelize = await loadSequelize();
  } else {
    // restart the connection pool, so that connections are not re-used across invocations
    sequelize.connectionManager.initPools();
    // restore getConnection() if close() has overwritten it
    if (Object.prototype.hasOwnProperty.call(sequelize.connectionManager, 'getConnection')) {
      delete sequelize.connectionManager.getConnection;
    }
  }
  try {
    return await work(sequelize);
  } finally {
    // close the connections opened during the invocation, once the queries in progress are done
    await sequelize.connectionManager.close();
  }
}

function query(db) {
  return db.query('SELECT CONNECTION_ID() AS id', { plain: true });
}

// The work of the broken samples: {"wait": true} awaits a query and returns its connection id; otherwise a query
// is started and not awaited, and its outcome logged with the request id of the invocation that started it.
async function work(db, event, requestId) {
  if (event.wait) {
    const row = await query(db);
    return { connectionId: row.id };
  }
  query(db).then(
    (row) => console.log(`query of ${requestId} returned connection ${row.id}`),
    (err) => console.log(`query of ${requestId} failed: ${err.name}: ${err.message}`),
  );
  return { requestId };
}

exports.handler = async (event, context) => withSequelize((db) => work(db, event, context.awsRequestId));

// The same without a .catch on the query that is not awaited.
exports.uncaught = async (event, context) =>
  withSequelize(async (db) => {
    query(db);
    return { requestId: context.awsRequestId };
  });

// A callback handler that leaves callbackWaitsForEmptyEventLoop at its default (true): the invocation ends once the
// event loop is empty, which it is once close() has closed the pool's connections and cleared its timers.
exports.callbackHandler = (event, context, callback) => {
  withSequelize((db) => work(db, { wait: true }, context.awsRequestId)).then(
    (result) => callback(null, result),
    (err) => callback(err),
  );
};
