/** The store's row shapes and mappers (shared with PostgreSQL), and the rows only SQLite's queries read. */
export * from '../rows.js';

export interface DepartureRow {
  user_id: string;
  rev: number;
}
