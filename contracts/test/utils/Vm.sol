// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Vm
/// @notice The cheatcodes the project's Solidity tests use, as served by Hardhat 3's EDR test runner at
/// `VM_ADDRESS`. Signatures follow Foundry's, which EDR implements; add one here before a test needs it.
interface Vm {
    /// @notice A log captured between `recordLogs()` and `getRecordedLogs()`.
    /// @param topics The log's topics, the event signature hash first for non-anonymous events.
    /// @param data The log's non-indexed data.
    /// @param emitter The address that emitted the log.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    // Caller and environment.

    /// @notice Makes the next call's `msg.sender` `sender`.
    function prank(address sender) external;
    /// @notice Makes every following call's `msg.sender` `sender` until `stopPrank()`.
    function startPrank(address sender) external;
    /// @notice Ends a `startPrank`.
    function stopPrank() external;
    /// @notice Sets the balance of `account` to `newBalance` wei.
    function deal(address account, uint256 newBalance) external;
    /// @notice Sets `block.timestamp`.
    function warp(uint256 newTimestamp) external;
    /// @notice Sets `block.number`.
    function roll(uint256 newHeight) external;
    /// @notice Sets `block.chainid`.
    function chainId(uint256 newChainId) external;
    /// @notice Sets the code at `target`.
    function etch(address target, bytes calldata newRuntimeBytecode) external;
    /// @notice Reads storage slot `slot` of `target`.
    function load(address target, bytes32 slot) external view returns (bytes32 data);
    /// @notice Writes `value` to storage slot `slot` of `target`.
    function store(address target, bytes32 slot, bytes32 value) external;
    /// @notice Names an address in traces.
    function label(address account, string calldata newLabel) external;

    // Expectations on the next call.

    /// @notice Expects the next call to revert, with any data.
    function expectRevert() external;
    /// @notice Expects the next call to revert with exactly `revertData`.
    function expectRevert(bytes calldata revertData) external;
    /// @notice Expects the next call to revert with exactly the four bytes `revertData` and nothing after them;
    /// use `expectPartialRevert` to match only the selector of an error that carries arguments.
    function expectRevert(bytes4 revertData) external;
    /// @notice Expects the next call to revert with data starting with `revertData`.
    function expectPartialRevert(bytes4 revertData) external;
    /// @notice Expects the next emitted log to equal the one emitted right after this call, all fields checked.
    function expectEmit() external;
    /// @notice As `expectEmit()`, also checking the emitter.
    function expectEmit(address emitter) external;
    /// @notice As `expectEmit()`, choosing which topics and whether the data are checked.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    /// @notice As `expectEmit(bool,bool,bool,bool)`, also checking the emitter.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;
    /// @notice Expects a call to `callee` with calldata starting with `data` before the test ends.
    function expectCall(address callee, bytes calldata data) external;

    // Logs.

    /// @notice Starts capturing every emitted log.
    function recordLogs() external;
    /// @notice Returns and clears the logs captured since `recordLogs()`.
    function getRecordedLogs() external returns (Log[] memory logs);

    // Fuzzing.

    /// @notice Discards the current fuzz input unless `condition` holds.
    function assume(bool condition) external pure;

    // Keys and signatures.

    /// @notice The address of secp256k1 private key `privateKey`.
    function addr(uint256 privateKey) external pure returns (address keyAddr);
    /// @notice Signs `digest` with secp256k1 private key `privateKey`; `v` is 27 or 28.
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);

    // Assertions: each reverts the test with both values and `message` when it fails.

    /// @notice Fails unless `condition` holds.
    function assertTrue(bool condition, string calldata message) external pure;
    /// @notice Fails if `condition` holds.
    function assertFalse(bool condition, string calldata message) external pure;
    /// @notice Fails unless `left == right`.
    function assertEq(bool left, bool right, string calldata message) external pure;
    /// @notice Fails unless `left == right`.
    function assertEq(uint256 left, uint256 right, string calldata message) external pure;
    /// @notice Fails unless `left == right`.
    function assertEq(int256 left, int256 right, string calldata message) external pure;
    /// @notice Fails unless `left == right`.
    function assertEq(address left, address right, string calldata message) external pure;
    /// @notice Fails unless `left == right`.
    function assertEq(bytes32 left, bytes32 right, string calldata message) external pure;
    /// @notice Fails unless `left` and `right` are equal bytes.
    function assertEq(bytes calldata left, bytes calldata right, string calldata message) external pure;
    /// @notice Fails unless `left` and `right` are equal strings.
    function assertEq(string calldata left, string calldata right, string calldata message) external pure;
    /// @notice Fails unless the arrays are equal element by element.
    function assertEq(uint256[] calldata left, uint256[] calldata right, string calldata message) external pure;
    /// @notice Fails unless the arrays are equal element by element.
    function assertEq(address[] calldata left, address[] calldata right, string calldata message) external pure;
    /// @notice Fails unless the arrays are equal element by element.
    function assertEq(bytes32[] calldata left, bytes32[] calldata right, string calldata message) external pure;
    /// @notice Fails unless `left != right`.
    function assertNotEq(uint256 left, uint256 right, string calldata message) external pure;
    /// @notice Fails unless `left != right`.
    function assertNotEq(address left, address right, string calldata message) external pure;
    /// @notice Fails unless `left != right`.
    function assertNotEq(bytes32 left, bytes32 right, string calldata message) external pure;
    /// @notice Fails unless `left > right`.
    function assertGt(uint256 left, uint256 right, string calldata message) external pure;
    /// @notice Fails unless `left >= right`.
    function assertGe(uint256 left, uint256 right, string calldata message) external pure;
    /// @notice Fails unless `left < right`.
    function assertLt(uint256 left, uint256 right, string calldata message) external pure;
    /// @notice Fails unless `left <= right`.
    function assertLe(uint256 left, uint256 right, string calldata message) external pure;
}
