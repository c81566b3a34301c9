import PheromonesCore

/// A channel on a socket whose options (``SocketOption``) can be set and read while it runs.
///
/// Callable from any thread: the operation runs on the channel's loop. On a closed channel it
/// fails with `ChannelError.ioOnClosedChannel`; a value the option cannot take, with
/// ``SocketOptionError/invalidValue(option:value:)``; a refusal by the kernel, with its `IOError`.
public protocol SocketOptionProvider: Channel {
    /// Sets `option` to `value` on the channel's socket.
    func setSocketOption<Value>(_ option: SocketOption<Value>, to value: Value) -> Future<Void>
    /// The value of `option` on the channel's socket, as the kernel reports it.
    func socketOption<Value>(_ option: SocketOption<Value>) -> Future<Value>
}

/// The socket a ``SocketOptionProvider`` sets options on, while it is open.
protocol SocketOptionTarget: AnyObject, Sendable {
    var loop: EpollEventLoop { get }
    /// The descriptor, or nil once the channel has closed (loop thread only).
    var openDescriptor: CInt? { get }
}

extension SocketOptionTarget {
    func setOnSocket<Value>(_ option: SocketOption<Value>, to value: Value) -> Future<Void> {
        loop.submit { [self] () throws -> Void in
            let bytes = try option.bytes(for: value)
            guard let fd = openDescriptor else { throw ChannelError.ioOnClosedChannel }
            try loop.posix.setOption(fd, level: option.level, name: option.name, bytes: bytes)
        }
    }

    func readFromSocket<Value>(_ option: SocketOption<Value>) -> Future<Value> {
        loop.submit { [self] () throws -> Value in
            guard let fd = openDescriptor else { throw ChannelError.ioOnClosedChannel }
            let bytes = try loop.posix.getOption(fd, level: option.level, name: option.name, capacity: option.size)
            guard let value = option.decode(bytes) else { throw SocketOptionError.unreadableValue(option: option.description) }
            return value
        }
    }
}
