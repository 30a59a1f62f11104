// The samples' node-postgres settings: PostgreSQL at DB_HOST:DB_PORT as DB_USER, database DB_NAME (the emulator's
// fault proxy puts its own address in DB_HOST/DB_PORT), and whatever pool settings each sample is about.

exports.settings = function settings(options = {}) {
  return {
    host: process.env.DB_HOST,
    port: Number(process.env.DB_PORT),
    user: process.env.DB_USER,
    database: process.env.DB_NAME,
    password: process.env.DB_PASSWORD,
    ...options,
  };
};
