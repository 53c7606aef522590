/**
 * Node-only entry of medimg-classify: file system, image decoding and CLI helpers.
 * Everything from the package root is re-exported here too.
 * @packageDocumentation
 */
export * from './index.js';
