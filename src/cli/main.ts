#!/usr/bin/env node
console.log('medimg-classify: CLI not yet available');
