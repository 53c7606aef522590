/** The library's version, recorded in saved classifiers. */
export const VERSION = '0.1.0';
