import { KeyfairError } from '../protocols/errors.ts'

export { KeyfairError }

export class RepoNotInitialisedError extends KeyfairError {
  static readonly code = 'ERR_REPO_NOT_INITIALISED'
  constructor (repo: string) {
    super(`no keyfair repo at ${repo} (run: keyfair init --repo ${repo})`, RepoNotInitialisedError.code)
  }
}

export class RepoExistsError extends KeyfairError {
  static readonly code = 'ERR_REPO_EXISTS'
  constructor (repo: string) {
    super(`a keyfair repo already exists at ${repo}`, RepoExistsError.code)
  }
}

export class RepoLockedError extends KeyfairError {
  static readonly code = 'ERR_REPO_LOCKED'
  constructor (repo: string, pid: number) {
    super(`another keyfair node (pid ${pid}) is running on ${repo}`, RepoLockedError.code)
  }
}

export class InsecureFileError extends KeyfairError {
  static readonly code = 'ERR_INSECURE_FILE'
  constructor (file: string, mode: number) {
    super(`${file} is readable by others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${file}`, InsecureFileError.code)
  }
}

export class BadConfigError extends KeyfairError {
  static readonly code = 'ERR_BAD_CONFIG'
  constructor (message: string, options?: ErrorOptions) {
    super(message, BadConfigError.code, options)
  }
}

export class BadMultiaddrError extends KeyfairError {
  static readonly code = 'ERR_BAD_MULTIADDR'
  constructor (address: string, why: string, options?: ErrorOptions) {
    super(`bad multiaddr '${address}': ${why}`, BadMultiaddrError.code, options)
  }
}

export class UnknownRoleError extends KeyfairError {
  static readonly code = 'ERR_UNKNOWN_ROLE'
  constructor (role: string, known: readonly string[]) {
    super(`unknown role '${role}' (expected one of: ${known.join(', ')})`, UnknownRoleError.code)
  }
}

export class PortInUseError extends KeyfairError {
  static readonly code = 'ERR_PORT_IN_USE'
  constructor (address: string, options?: ErrorOptions) {
    super(`cannot listen on ${address}: the port is already in use`, PortInUseError.code, options)
  }
}

export class ListenError extends KeyfairError {
  static readonly code = 'ERR_LISTEN'
  constructor (message: string, options?: ErrorOptions) {
    super(message, ListenError.code, options)
  }
}

export class NodeNotRunningError extends KeyfairError {
  static readonly code = 'ERR_NODE_NOT_RUNNING'
  constructor (repo: string, options?: ErrorOptions) {
    super(`no keyfair node is running for ${repo} (start one with: keyfair start --repo ${repo})`, NodeNotRunningError.code, options)
  }
}

export class UnauthorizedError extends KeyfairError {
  static readonly code = 'ERR_UNAUTHORIZED'
  constructor (message = 'the control API refused the token') {
    super(message, UnauthorizedError.code)
  }
}

export class BadRequestError extends KeyfairError {
  static readonly code = 'ERR_BAD_REQUEST'
  constructor (message: string, options?: ErrorOptions) {
    super(message, BadRequestError.code, options)
  }
}

export class NotFoundError extends KeyfairError {
  static readonly code = 'ERR_NOT_FOUND'
  constructor (message: string) {
    super(message, NotFoundError.code)
  }
}

export class DeviceNotRunningError extends KeyfairError {
  static readonly code = 'ERR_DEVICE_NOT_RUNNING'
  constructor () {
    super('this node runs no sealed device: start it with --role buyer', DeviceNotRunningError.code)
  }
}

/** A command's argument or flag that is not of the form the command takes */
export class UsageError extends KeyfairError {
  static readonly code = 'ERR_USAGE'
  constructor (message: string, options?: ErrorOptions) {
    super(message, UsageError.code, options)
  }
}

/** A request for a role this node was not started with */
export class RoleNotRunningError extends KeyfairError {
  static readonly code = 'ERR_ROLE_NOT_RUNNING'
  constructor (role: string) {
    super(`this node does not run the ${role} role (start it with --role ${role})`, RoleNotRunningError.code)
  }
}

/** A browser request without the session's proof that it came from the node's own page */
export class ForbiddenError extends KeyfairError {
  static readonly code = 'ERR_FORBIDDEN'
  constructor (message: string) {
    super(message, ForbiddenError.code)
  }
}
