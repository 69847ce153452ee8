import type { Role } from '../protocol/types.js';

/** Who may do what in a group. Direct conversations have no management actions. */
const rank: Record<Role, number> = { owner: 3, admin: 2, member: 1 };

export const canManageInvites = (role: Role): boolean => rank[role] >= rank.admin;
export const canRename = (role: Role): boolean => rank[role] >= rank.admin;
export const canDelete = (role: Role): boolean => role === 'owner';
export const canSetRoles = (role: Role): boolean => role === 'owner';
/** Owners may remove admins and members; admins only members; nobody removes the owner. */
export const canKick = (actor: Role, target: Role): boolean => rank[actor] >= rank.admin && rank[actor] > rank[target];
