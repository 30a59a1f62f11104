// The samples' Sequelize: MySQL/MariaDB at DB_HOST:DB_PORT as DB_USER, database DB_NAME, with the pool settings
// each sample is about. DB_INIT_COMMAND (the session's wait_timeout, which MariaDB keeps per session only) runs on
// every new connection; on RDS it would be a parameter group setting instead.

const { Sequelize } = require('sequelize');

exports.connect = function connect(options = {}) {
  const init = process.env.DB_INIT_COMMAND;
  return new Sequelize(process.env.DB_NAME, process.env.DB_USER, process.env.DB_PASSWORD || '', {
    host: process.env.DB_HOST,
    port: Number(process.env.DB_PORT),
    dialect: 'mysql',
    logging: false,
    ...options,
    hooks: init ? { afterConnect: (connection) => connection.promise().query(init) } : {},
  });
};
